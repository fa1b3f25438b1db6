"""Schema migration for the evaluation service; run by the run_migrations step as a
Container Apps job (`python migrate.py`). Idempotent."""
import os

import psycopg

with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS evaluations (
               id SERIAL PRIMARY KEY,
               draft_id TEXT NOT NULL,
               score REAL NOT NULL,
               created_at TIMESTAMPTZ NOT NULL DEFAULT now()
           )"""
    )
print("evaluation-service migrations applied")
