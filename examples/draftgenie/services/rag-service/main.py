"""DraftGenie RAG service (example): checks that Qdrant answers and lists its collections."""
import os

import httpx
from fastapi import FastAPI

app = FastAPI(title="rag-service")
QDRANT_URL = os.environ.get("QDRANT_URL", "http://qdrant:6333")


@app.get("/health")
def health():
    return {"status": "ok", "gemini_configured": bool(os.environ.get("GEMINI_API_KEY"))}


@app.get("/collections")
def collections():
    r = httpx.get(f"{QDRANT_URL}/collections", timeout=5.0)
    r.raise_for_status()
    return r.json()
