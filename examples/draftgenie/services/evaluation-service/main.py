"""DraftGenie evaluation service (example): stores evaluation scores in PostgreSQL."""
import os

import psycopg
from fastapi import FastAPI

app = FastAPI(title="evaluation-service")


def connect():
    return psycopg.connect(os.environ["DATABASE_URL"])


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/evaluations")
def evaluations():
    with connect() as conn:
        rows = conn.execute("SELECT id, draft_id, score FROM evaluations ORDER BY id DESC LIMIT 100").fetchall()
    return [{"id": i, "draft_id": d, "score": s} for i, d, s in rows]
