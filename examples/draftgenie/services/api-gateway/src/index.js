// DraftGenie API gateway (example): GET /health, and /api/<service>/... forwarded to the
// service whose URL is in <SERVICE>_SERVICE_URL (set by the configure_environment_variables step).
const http = require("node:http");

const port = Number(process.env.PORT || 3000);
const corsOrigin = process.env.CORS_ORIGIN || "*";
const upstreams = {
  speakers: process.env.SPEAKER_SERVICE_URL,
  drafts: process.env.DRAFT_SERVICE_URL,
  rag: process.env.RAG_SERVICE_URL,
  evaluations: process.env.EVALUATION_SERVICE_URL,
};

function send(res, status, body) {
  res.writeHead(status, {
    "content-type": "application/json",
    "access-control-allow-origin": corsOrigin,
  });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  if (req.url === "/health") return send(res, 200, { status: "ok" });
  const match = /^\/api\/([a-z]+)(\/.*)?$/.exec(req.url || "");
  const base = match && upstreams[match[1]];
  if (!base) return send(res, 404, { error: "not found" });
  const target = new URL(match[2] || "/", base);
  const proxied = http.request(target, { method: req.method, headers: req.headers }, (up) => {
    res.writeHead(up.statusCode || 502, up.headers);
    up.pipe(res);
  });
  proxied.on("error", (err) => send(res, 502, { error: String(err.message) }));
  req.pipe(proxied);
});

server.listen(port, () => console.log(`api-gateway listening on ${port}`));
