"""The peer of Atelier's status read in bench/http.sh: `GET /v1/generations/{id}` written the
way a typical FastAPI service writes it (the stack of the drafts backend Atelier replaces).

It reads the very SQLite file an `atelier serve` uses and does the same work per request:
the bearer key is hashed (SHA-256, hex) and looked up with its user (a revoked key or a
disabled user is a 401), then the generation is read, scoped to its owner (another user's is
a 404), then its images; the answer is the same document, validated by pydantic models.
Endpoints are plain `def`s, so FastAPI runs them in its thread pool, as it does for any
blocking driver such as sqlite3; each thread keeps one read-only connection.

Run: ATELIER_PEER_DB=path/to/catalogue.db uvicorn peer:app --app-dir bench/http
"""

import hashlib
import json
import os
import sqlite3
import threading
from typing import Annotated, Any, Optional

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

DATABASE = os.environ["ATELIER_PEER_DB"]

app = FastAPI(title="drafts status peer")
bearer = HTTPBearer()
local = threading.local()


def db() -> sqlite3.Connection:
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(f"file:{DATABASE}?mode=ro", uri=True, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        local.conn = conn
    return conn


class User(BaseModel):
    id: str
    email: str
    role: str


class ErrorOut(BaseModel):
    code: str
    message: Optional[str]


class ImageOut(BaseModel):
    id: str
    generation_id: str
    role: str
    storage_key: str
    url: Optional[str]
    width: int
    height: int
    format: str
    size_bytes: int
    sha256: str
    palette: list[str]
    dominant_color: Optional[str]
    category: Optional[str]
    subject: Optional[str]
    version: int
    status: str
    favourite: bool
    public: bool
    tags: list[str]
    synthetic: bool
    created_at: str


class GenerationOut(BaseModel):
    id: str
    kind: str
    provider: str
    account: Optional[str]
    prompt: str
    negative_prompt: Optional[str] = None
    parameters: dict[str, Any]
    category: Optional[str]
    subject: Optional[str]
    version: int
    parent_id: Optional[str]
    status: str
    phase: Optional[str]
    progress: float
    error: Optional[ErrorOut]
    created_at: str
    started_at: Optional[str]
    completed_at: Optional[str]
    images: list[ImageOut]


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
) -> User:
    digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
    row = (
        db()
        .execute(
            "SELECT u.id, u.email, u.role, u.disabled FROM api_keys k"
            " JOIN users u ON u.id = k.user_id"
            " WHERE k.hash = ? AND k.revoked_at IS NULL",
            (digest,),
        )
        .fetchone()
    )
    if row is None or row["disabled"]:
        raise HTTPException(status_code=401, detail="this API key is not valid")
    return User(id=row["id"], email=row["email"], role=row["role"])


def image_out(r: sqlite3.Row) -> ImageOut:
    return ImageOut(
        id=r["id"],
        generation_id=r["generation_id"],
        role=r["role"],
        storage_key=r["storage_key"],
        url=r["public_url"],
        width=r["width"],
        height=r["height"],
        format=r["format"],
        size_bytes=r["size_bytes"],
        sha256=r["sha256"],
        palette=json.loads(r["palette"]),
        dominant_color=r["dominant_color"],
        category=r["category"],
        subject=r["subject"],
        version=r["version"],
        status=r["status"],
        favourite=bool(r["favourite"]),
        public=bool(r["public"]),
        tags=json.loads(r["tags"]),
        synthetic=bool(r["synthetic"]),
        created_at=r["created_at"],
    )


@app.get("/v1/generations/{generation_id}", response_model=GenerationOut)
def get_generation(
    generation_id: str, user: Annotated[User, Depends(current_user)]
) -> GenerationOut:
    conn = db()
    if user.role == "admin":
        g = conn.execute("SELECT * FROM generations WHERE id = ?", (generation_id,)).fetchone()
    else:
        g = conn.execute(
            "SELECT * FROM generations WHERE id = ? AND owner = ?", (generation_id, user.id)
        ).fetchone()
    if g is None:
        raise HTTPException(status_code=404, detail="no such generation")
    images = conn.execute(
        "SELECT * FROM images WHERE generation_id = ? ORDER BY role", (generation_id,)
    ).fetchall()
    error = (
        ErrorOut(code=g["error_code"], message=g["error_message"]) if g["error_code"] else None
    )
    return GenerationOut(
        id=g["id"],
        kind=g["kind"],
        provider=g["provider"],
        account=g["account"],
        prompt=g["prompt"],
        negative_prompt=g["negative_prompt"],
        parameters=json.loads(g["parameters"]),
        category=g["category"],
        subject=g["subject"],
        version=g["version"],
        parent_id=g["parent_id"],
        status=g["status"],
        phase=g["phase"],
        progress=g["progress"],
        error=error,
        created_at=g["created_at"],
        started_at=g["started_at"],
        completed_at=g["completed_at"],
        images=[image_out(r) for r in images],
    )
