"""A test double of the Hugging Face Hub's upload API, in memory, for pushing through huggingface_hub's real client.

The suite's other local Hub (hub_server.py, olah over git mirrors) serves downloads only, so nothing there can take an
upload. This small threaded HTTP server speaks just what a push and the download back need:

    GET  /api/whoami-v2                                   who a token is (401 for an unknown one)
    POST /api/repos/create                                create_repo (409 where the name is taken)
    GET  /api/{type}s/{repo}[/revision/{rev}]             repo_info (create_repo's exist_ok, repo_exists)
    POST /api/validate-yaml                               README.md's metadata (upload_folder's check)
    POST /api/{type}s/{repo}/preupload/{rev}              every file "regular" (no LFS, no Xet), none ignored
    POST /api/{type}s/{repo}/commit/{rev}                 the NDJSON commit: a header, then base64 files
    HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{file}       hf_hub_download: X-Repo-Commit, ETag, Content-Length

Only branch main exists, and only its latest commit. Tokens are TOKENS' keys: each names its user and whether it may
write; one that may only read is refused (403) where the Hub refuses one, on create and commit. Errors carry the Hub's
JSON {"error": ...} and its X-Error-Code header where huggingface_hub reads one (RepoNotFound, RevisionNotFound,
EntryNotFound). A name that a repo of another type holds is refused (409) on create, as the issue has it.
"""
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

TOKENS = {"good-token": ("tester", "write"), "read-only": ("tester", "read")}
TYPES = ("model", "dataset", "space")
PREFIXES = {"dataset": "datasets/", "space": "spaces/"}  # a model's URLs have none
API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(preupload|commit|revision)/(.+))?$")
RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def git_blob_sha(data: bytes) -> str:
    """The file's git blob id: the Hub's ETag and oid of a regular file (huggingface_hub's sha.git_hash)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    files: dict[str, bytes] = field(default_factory=dict)
    head: str = hashlib.sha1(b"initial commit").hexdigest()  # the commit id of main, its one revision


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **more):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.more = status, message, code, headers or {}, more


class LocalUploadHub:
    """The server, on a free port of 127.0.0.1 in a thread of this process; repos[(type, id)] holds what was pushed."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.answer(self)

            do_HEAD = do_POST = do_GET

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="hub-upload-double", daemon=True)

    def start(self) -> "LocalUploadHub":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo_id: str, repo_type: str = "model", files: dict[str, bytes] | None = None) -> Repo:
        """A repo that exists before the test's push (e.g. a dataset holding the name the push wants)."""
        with self.lock:
            repo = self.repos[(repo_type, repo_id)] = Repo(repo_type, dict(files or {}))
        return repo

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        return dict(self.repos[(repo_type, repo_id)].files)

    # ---- the routes

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(request.path).path)
        self.requests.append((request.command, path))
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0)) if request.command == "POST" else b""
        try:
            status, headers, content = self.route(request.command, path, body, request.headers)
        except HubError as e:
            status, content = e.status, json.dumps({"error": e.message, **e.more}).encode()
            headers = {"Content-Type": "application/json", **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
        request.send_response(status)
        for name, value in {"Content-Length": str(len(content)), **headers}.items():
            request.send_header(name, value)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(content)

    def route(self, method: str, path: str, body: bytes, headers) -> tuple[int, dict, bytes]:
        if method == "GET" and path == "/api/whoami-v2":
            user, role = self.user(headers)
            return self.json({"type": "user", "name": user, "fullname": user.title(), "orgs": [],
                              "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": role}}})
        if method == "POST" and path == "/api/repos/create":
            return self.create(json.loads(body), headers)
        if method == "POST" and path == "/api/validate-yaml":
            return self.json({"errors": [], "warnings": []})
        if match := API_REPO.match(path):
            kind, repo_id, action, revision = match.groups()
            repo_type = kind[:-1]
            if method == "GET" and action in (None, "revision"):
                return self.info(repo_id, repo_type, revision or "main")
            if method == "POST" and action == "preupload":
                return self.preupload(repo_id, repo_type, revision, json.loads(body), headers)
            if method == "POST" and action == "commit":
                return self.commit(repo_id, repo_type, revision, body, headers)
        if (match := RESOLVE.match(path)) and method in ("GET", "HEAD"):
            kind, repo_id, revision, filename = match.groups()
            return self.resolve(repo_id, kind[:-1] if kind else "model", revision, filename)
        raise HubError(404, f"{method} {path} is not part of this test double of the Hub")

    def user(self, headers) -> tuple[str, str]:
        """The token's user and role; 401 for no token or an unknown one, as the Hub answers."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in TOKENS:
            raise HubError(401, "Invalid credentials in Authorization header")
        return TOKENS[token]

    def writer(self, headers, repo_id: str, repo_type: str) -> None:
        user, role = self.user(headers)
        if role != "write" or repo_id.split("/")[0] != user:
            raise HubError(403, f"You don't have the rights to create or write a {repo_type} under the namespace "
                                f"\"{repo_id.split('/')[0]}\"")

    def repo(self, repo_id: str, repo_type: str, revision: str = "main") -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if revision not in ("main", repo.head):
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo

    def url(self, repo_id: str, repo_type: str) -> str:
        return f"{self.endpoint}/{PREFIXES.get(repo_type, '')}{repo_id}"

    def create(self, payload: dict, headers) -> tuple[int, dict, bytes]:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.user(headers)[0]}/{payload['name']}"
        self.writer(headers, repo_id, repo_type)
        with self.lock:
            if (repo_type, repo_id) in self.repos:  # the Hub's answer; exist_ok=True returns its url
                raise HubError(409, f"You already created this {repo_type} repo", url=self.url(repo_id, repo_type))
            taken = [t for t in TYPES if (t, repo_id) in self.repos]
            if taken:
                raise HubError(409, f"{repo_id} is already taken by a {taken[0]} repo",
                               url=self.url(repo_id, taken[0]))
            self.repos[(repo_type, repo_id)] = Repo(repo_type)
        return self.json({"url": self.url(repo_id, repo_type), "name": repo_id, "id": repo_id})

    def info(self, repo_id: str, repo_type: str, revision: str) -> tuple[int, dict, bytes]:
        repo = self.repo(repo_id, repo_type, revision)
        return self.json({"id": repo_id, "_id": repo_id, "sha": repo.head, "private": False, "disabled": False,
                          "siblings": [{"rfilename": name} for name in sorted(repo.files)]})

    def preupload(self, repo_id, repo_type, revision, payload: dict, headers) -> tuple[int, dict, bytes]:
        self.writer(headers, repo_id, repo_type)
        repo = self.repo(repo_id, repo_type, revision)
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_blob_sha(repo.files[f["path"]]) if f["path"] in repo.files else None}
                 for f in payload["files"]]
        return self.json({"files": files, "commitOid": repo.head})

    def commit(self, repo_id, repo_type, revision, body: bytes, headers) -> tuple[int, dict, bytes]:
        self.writer(headers, repo_id, repo_type)
        repo = self.repo(repo_id, repo_type, revision)
        if revision != "main":
            raise HubError(400, "this test double commits to branch main only")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit begins with its header")
        files, deleted = {}, []
        for line in lines[1:]:
            value = line["value"]
            if line["key"] == "file" and value.get("encoding") == "base64":
                files[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"].rstrip("/"))
            else:
                raise HubError(400, f"this test double takes regular files only, not {line['key']!r}")
        with self.lock:
            for gone in deleted:
                repo.files = {p: d for p, d in repo.files.items() if p != gone and not p.startswith(gone + "/")}
            repo.files.update(files)
            oid = hashlib.sha1(json.dumps([repo.head, lines[0]["value"], sorted(files), deleted]).encode()).hexdigest()
            repo.head = oid
        return self.json({"success": True, "commitOid": oid,
                          "commitUrl": f"{self.url(repo_id, repo_type)}/commit/{oid}"})

    def resolve(self, repo_id, repo_type, revision, filename) -> tuple[int, dict, bytes]:
        repo = self.repo(repo_id, repo_type, revision)
        commit = repo.head if revision == "main" else revision
        if filename not in repo.files:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit})
        data = repo.files[filename]
        return 200, {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit,
                     "ETag": f'"{git_blob_sha(data)}"'}, data

    @staticmethod
    def json(value) -> tuple[int, dict, bytes]:
        return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()
