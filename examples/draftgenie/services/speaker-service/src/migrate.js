// Schema migration for the speaker service; run by the run_migrations step as a
// Container Apps job (`node src/migrate.js`). Idempotent.
const { pool } = require("./db");

async function main() {
  await pool.query(`CREATE TABLE IF NOT EXISTS speakers (
    id SERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
  )`);
  console.log("speaker-service migrations applied");
  await pool.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
