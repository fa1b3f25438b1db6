// One shared PostgreSQL pool; DATABASE_URL is a container app secret (secretref:database-url).
const { Pool } = require("pg");

const pool = new Pool({ connectionString: process.env.DATABASE_URL, ssl: { rejectUnauthorized: false } });

module.exports = { pool };
