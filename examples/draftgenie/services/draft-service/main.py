"""DraftGenie draft service (example): drafts kept in MongoDB when MONGODB_URL is set."""
import os

from fastapi import FastAPI

app = FastAPI(title="draft-service")
_drafts: list[dict] = []  # in-memory fallback when no MongoDB is configured


def collection():
    url = os.environ.get("MONGODB_URL")
    if not url:
        return None
    from pymongo import MongoClient

    return MongoClient(url)["draftgenie"]["drafts"]


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/drafts")
def list_drafts():
    col = collection()
    if col is None:
        return _drafts
    return [{"id": str(d["_id"]), "text": d.get("text", "")} for d in col.find().limit(100)]


@app.post("/drafts")
def create_draft(draft: dict):
    col = collection()
    if col is None:
        _drafts.append(draft)
        return draft
    return {"id": str(col.insert_one(draft).inserted_id)}
