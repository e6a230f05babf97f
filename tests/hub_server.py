"""A test stand-in for the Hugging Face Hub: a thread serving, on 127.0.0.1, the part of the Hub HTTP API that the
installed huggingface_hub client uses to push a model repo (create repo, branch, preupload, NDJSON commit, validate
YAML) and to pull it (repo info, tree, resolve). Files are taken as "regular" uploads (inline in the commit), so no
LFS or Xet storage is involved. It is not a Hub: repos live in memory, and only what the tests need is there.

Behaviour by namespace: `locked/...` refuses writes with 403; `flaky/...` drops the connection in the middle of
the commit upload. Writes need `Authorization: Bearer <one of tokens>` (else 401).
"""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_oid(content: bytes) -> str:
    """The git blob id of `content` (what the Hub reports as a regular file's oid and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Repo:
    """One model repo: commits (each a full file tree) and branches pointing at them."""

    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def add_commit(self, files: dict[str, bytes], branch: str, summary: str) -> str:
        oid = hashlib.sha1(f"{len(self.commits)}:{summary}:{sorted(files)}".encode()).hexdigest()
        self.commits[oid] = files
        self.branches[branch] = oid
        return oid

    def resolve(self, revision: str) -> str | None:
        return self.branches.get(revision) or (revision if revision in self.commits else None)


class FakeHub:
    """The server: `start()` returns its URL (use it as HF_ENDPOINT); `repos` holds what was pushed."""

    def __init__(self, tokens: tuple[str, ...]):
        self.tokens = set(tokens)
        self.repos: dict[str, Repo] = {}
        self.calls: list[str] = []  # "METHOD /path" of every request
        self.unknown: list[str] = []  # requests this stand-in does not implement
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at `revision` (a copy)."""
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(revision)])


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a dropped connection is on purpose (flaky/...)
        pass


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: tests read their own output
        pass

    # -- plumbing -------------------------------------------------------------------------------------------

    def _send(self, status: int, body=None, headers: dict | None = None, head_only: bool = False) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, head_only: bool = False) -> None:
        headers = {"X-Error-Message": message} | ({"X-Error-Code": code} if code else {})
        self._send(status, {"error": message}, headers, head_only)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer "):] in self.hub.tokens

    def _may_write(self, namespace: str) -> bool:
        if not self._authorized():
            self._error(401, "Invalid credentials in Authorization header")
            return False
        if namespace == "locked":
            self._error(403, f"You don't have the rights to write to the namespace {namespace}")
            return False
        return True

    def _repo(self, repo_id: str, head_only: bool = False) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized()):
            self._error(404, "Repository not found", "RepoNotFound", head_only)
            return None
        return repo

    def _commit_id(self, repo: Repo, revision: str, head_only: bool = False) -> str | None:
        """The commit `revision` names, or None after answering 404 as the Hub does."""
        oid = repo.resolve(revision)
        if oid is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound", head_only)
        return oid

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        query = parse_qs(parts.query)
        self.hub.calls.append(f"{method} {parts.path}")
        with self.hub.lock:
            if segments[:1] == ["api"]:
                handled = self._api(method, segments[1:], query)
            elif len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
                handled = self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]), method == "HEAD")
            else:
                handled = False
        if not handled:
            self.hub.unknown.append(f"{method} {parts.path}")
            self._error(404, f"not implemented by the test hub: {method} {parts.path}")

    def do_GET(self):
        self._route("GET")

    def do_HEAD(self):
        self._route("HEAD")

    def do_POST(self):
        self._route("POST")

    # -- endpoints ------------------------------------------------------------------------------------------

    def _api(self, method: str, seg: list[str], query: dict) -> bool:
        if method == "POST" and seg == ["repos", "create"]:
            return self._create_repo(json.loads(self._body()))
        if method == "POST" and seg == ["validate-yaml"]:
            return self._validate_yaml(json.loads(self._body()))
        if method == "GET" and seg == ["agent-harnesses"]:  # the client's agent detection registry: empty
            self._send(200, {"standardEnvVars": [], "harnesses": {}})
            return True
        if method == "GET" and len(seg) == 3 and seg[0] == "models":  # repo info at main
            return self._info(f"{seg[1]}/{seg[2]}", "main")
        if len(seg) < 4 or seg[0] != "models":
            return False
        repo_id, action, rest = f"{seg[1]}/{seg[2]}", seg[3], seg[4:]
        if method == "POST" and action == "preupload" and len(rest) == 1:
            return self._preupload(repo_id, rest[0], json.loads(self._body()))
        if method == "POST" and action == "commit" and len(rest) == 1:
            return self._commit(repo_id, rest[0])
        if method == "POST" and action == "branch" and len(rest) == 1:
            return self._branch(repo_id, rest[0], json.loads(self._body() or b"{}"))
        if method == "GET" and action == "revision" and len(rest) == 1:
            return self._info(repo_id, rest[0])
        if method == "GET" and action == "tree" and rest:
            return self._tree(repo_id, rest[0], "/".join(rest[1:]), query.get("recursive", ["false"])[0].lower() == "true")
        return False

    def _create_repo(self, payload: dict) -> bool:
        namespace, name = payload.get("organization"), payload["name"]
        if not self._may_write(namespace):
            return True
        repo_id = f"{namespace}/{name}"
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            self._send(409, {"error": "You already created this model repo", "url": url})
            return True
        repo = Repo(private=payload.get("visibility") == "private")
        repo.add_commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, "main", "initial")
        self.hub.repos[repo_id] = repo
        self._send(200, {"url": url, "name": repo_id})
        return True

    def _validate_yaml(self, payload: dict) -> bool:
        content = payload.get("content", "")
        try:
            if content.startswith("---\n"):
                meta = yaml.safe_load(content.split("\n---\n", 1)[0][4:])
                if not isinstance(meta, dict):
                    raise ValueError("the metadata is not a mapping")
        except (yaml.YAMLError, ValueError) as e:
            self._send(400, {"errors": [{"message": f"invalid YAML: {e}"}]})
            return True
        self._send(200, {"errors": [], "warnings": []})
        return True

    def _preupload(self, repo_id: str, revision: str, payload: dict) -> bool:
        if not self._may_write(repo_id.split("/")[0]) or (repo := self._repo(repo_id)) is None:
            return True
        head = repo.resolve(revision)
        current = repo.commits.get(head, {})
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_oid(current[f["path"]]) if f["path"] in current else None} for f in payload["files"]]
        self._send(200, {"files": files, "commitOid": head})
        return True

    def _commit(self, repo_id: str, revision: str) -> bool:
        namespace = repo_id.split("/")[0]
        if namespace == "flaky":  # read a part of the upload, then drop the connection without an answer
            self.rfile.read(min(256, int(self.headers.get("Content-Length") or 0)))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        body = self._body()
        if not self._may_write(namespace) or (repo := self._repo(repo_id)) is None:
            return True
        if (head := self._commit_id(repo, revision)) is None:
            return True
        files, summary = dict(repo.commits[head]), ""
        for line in body.splitlines():
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value["summary"]
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:  # lfsFile: this stand-in asked for regular uploads only
                self._send(400, {"error": f"unexpected commit operation {key}"})
                return True
        oid = repo.add_commit(files, revision, summary)
        self._send(200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{oid}", "commitOid": oid, "success": True,
                         "pullRequestUrl": None})
        return True

    def _branch(self, repo_id: str, branch: str, payload: dict) -> bool:
        if not self._may_write(repo_id.split("/")[0]) or (repo := self._repo(repo_id)) is None:
            return True
        if branch in repo.branches:
            self._error(409, f"Reference already exists: refs/heads/{branch}")
            return True
        repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main")
        self._send(200, {})
        return True

    def _info(self, repo_id: str, revision: str) -> bool:
        if (repo := self._repo(repo_id)) is None:
            return True
        if (oid := self._commit_id(repo, revision)) is None:
            return True
        siblings = [{"rfilename": p} for p in sorted(repo.commits[oid])]
        self._send(200, {"id": repo_id, "modelId": repo_id, "sha": oid, "private": repo.private, "siblings": siblings})
        return True

    def _tree(self, repo_id: str, revision: str, path: str, recursive: bool) -> bool:
        if (repo := self._repo(repo_id)) is None:
            return True
        if (oid := self._commit_id(repo, revision)) is None:
            return True
        prefix = path.rstrip("/") + "/" if path else ""
        entries, folders = [], set()
        for name, content in sorted(repo.commits[oid].items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            entries.append({"type": "file", "path": name, "size": len(content), "oid": git_oid(content)})
        entries += [{"type": "directory", "path": f, "oid": "0" * 40} for f in sorted(folders)]
        self._send(200, entries)
        return True

    def _resolve(self, repo_id: str, revision: str, filename: str, head_only: bool) -> bool:
        if (repo := self._repo(repo_id, head_only)) is None:
            return True
        if (oid := self._commit_id(repo, revision, head_only)) is None:
            return True
        content = repo.commits[oid].get(filename)
        if content is None:
            self._error(404, "Entry not found", "EntryNotFound", head_only)
            return True
        self._send(200, content, {"X-Repo-Commit": oid, "ETag": f'"{git_oid(content)}"',
                                  "Content-Type": "application/octet-stream"}, head_only)
        return True
