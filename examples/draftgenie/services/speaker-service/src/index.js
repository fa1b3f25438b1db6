// DraftGenie speaker service (example): GET /health, GET /speakers, POST /speakers {"name": ...}.
const http = require("node:http");
const { pool } = require("./db");

const port = Number(process.env.PORT || 3001);

function send(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

http
  .createServer(async (req, res) => {
    try {
      if (req.url === "/health") return send(res, 200, { status: "ok" });
      if (req.url === "/speakers" && req.method === "GET") {
        const { rows } = await pool.query("SELECT id, name FROM speakers ORDER BY id");
        return send(res, 200, rows);
      }
      if (req.url === "/speakers" && req.method === "POST") {
        let body = "";
        for await (const chunk of req) body += chunk;
        const { name } = JSON.parse(body || "{}");
        const { rows } = await pool.query("INSERT INTO speakers (name) VALUES ($1) RETURNING id, name", [name]);
        return send(res, 201, rows[0]);
      }
      send(res, 404, { error: "not found" });
    } catch (err) {
      send(res, 500, { error: String(err.message) });
    }
  })
  .listen(port, () => console.log(`speaker-service listening on ${port}`));
