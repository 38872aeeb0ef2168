"""A small Hugging Face Hub-compatible HTTP server for offline tests (standard library only).

It implements the part of the Hub's HTTP API that `huggingface_hub` (2.x) and `transformers` (5.x) use to
create a repo, push files to it and download them back: `POST /api/repos/create`, `POST /api/validate-yaml`,
`GET /api/whoami-v2`, `POST /api/{type}s/{repo}/preupload/{rev}`, `POST /api/{type}s/{repo}/commit/{rev}`
(NDJSON, base64 file contents), `GET /api/{type}s/{repo}[/revision/{rev}]`,
`GET /api/{type}s/{repo}/tree/{rev}[/{path}]` and `HEAD/GET /[{type}s/]{repo}/resolve/{rev}/{file}`.

Every file is sent as a "regular" (base64 in the commit) upload, so no LFS or Xet storage is needed; clients
must run with `HF_HUB_DISABLE_XET=1`. Each commit is a full snapshot of the repo, kept on disk under `root`,
so older revisions stay downloadable by commit id, as on the Hub. Errors carry the `X-Error-Code` headers
`huggingface_hub` turns into `RepositoryNotFoundError`, `RevisionNotFoundError` and `EntryNotFoundError`.

Use it from a test through the `hub` fixture of `test_hub_push.py`, or directly:

>>> from hub_server import HubServer
>>> with HubServer(tmp_path) as hub:                       # doctest: +SKIP
...     env = hub.client_env(tmp_path / "hf_home")          # HF_ENDPOINT, HF_TOKEN, HF_HUB_DISABLE_XET, HF_HOME
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
REPO_TYPES = ("model", "dataset", "space")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's contents: what the Hub returns as a regular file's `oid` and `ETag`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An HTTP error answer, with the `X-Error-Code` that `huggingface_hub` maps to an exception class."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


class HubStore:
    """Repos on disk: `root/<type>/<namespace>/<name>/<commit>/<files>`, one full snapshot per commit."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        # (repo_type, repo_id) -> commits, oldest first; each is {"oid", "title", "files": {path: blob sha1}}.
        self.repos: dict[tuple[str, str], list[dict]] = {}

    # Repos and revisions
    def create_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            commit = {"oid": self._new_oid(), "title": "initial commit", "files": {}, "date": time.time()}
            self.snapshot_dir(repo_type, repo_id, commit["oid"]).mkdir(parents=True)
            self.repos[(repo_type, repo_id)] = [commit]

    def commits(self, repo_type: str, repo_id: str) -> list[dict]:
        if (repo_type, repo_id) not in self.repos:
            raise HubError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return self.repos[(repo_type, repo_id)]

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> dict:
        commits = self.commits(repo_type, repo_id)
        if revision == "main":
            return commits[-1]
        for commit in commits:
            if commit["oid"] == revision or (len(revision) >= 7 and commit["oid"].startswith(revision)):
                return commit
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def read(self, repo_type: str, repo_id: str, commit: dict, path: str) -> bytes:
        if path not in commit["files"]:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        return (self.snapshot_dir(repo_type, repo_id, commit["oid"]) / path).read_bytes()

    # Commits
    def commit(self, repo_type: str, repo_id: str, revision: str, lines: list[dict]) -> dict:
        with self.lock:
            if revision != "main":
                raise HubError(400, "This test server only commits to the 'main' branch")
            parent = self.resolve(repo_type, repo_id, "main")
            header = next((line["value"] for line in lines if line.get("key") == "header"), None)
            if header is None or not header.get("summary"):
                raise HubError(400, "A commit needs a header line with a non-empty summary")
            if header.get("parentCommit") and header["parentCommit"] != parent["oid"]:
                raise HubError(412, f"parentCommit {header['parentCommit']} is not the head of main")
            old_dir = self.snapshot_dir(repo_type, repo_id, parent["oid"])
            files = dict(parent["files"])
            contents: dict[str, bytes | None] = {}
            for line in lines:
                key, value = line.get("key"), line.get("value", {})
                if key == "header":
                    continue
                path = _clean_path(value.get("path", ""))
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HubError(400, f"Unsupported encoding for {path}: {value.get('encoding')}")
                    data = base64.b64decode(value["content"])
                    contents[path] = data
                    files[path] = git_blob_sha1(data)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    files.pop(path)
                    contents[path] = None
                elif key == "deletedFolder":
                    for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                        files.pop(name)
                        contents[name] = None
                else:
                    # "lfsFile" cannot happen: preupload answers "regular" for every file.
                    raise HubError(400, f"Unsupported commit operation {key!r} for {path}")
            commit = {"oid": self._new_oid(), "title": header["summary"], "files": files, "date": time.time()}
            new_dir = self.snapshot_dir(repo_type, repo_id, commit["oid"])
            new_dir.mkdir(parents=True)
            for path in files:
                target = new_dir / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if path in contents:
                    target.write_bytes(contents[path])
                else:
                    shutil.copyfile(old_dir / path, target)
            self.repos[(repo_type, repo_id)].append(commit)
            return commit

    def snapshot_dir(self, repo_type: str, repo_id: str, oid: str) -> Path:
        return self.root / repo_type / repo_id / oid

    @staticmethod
    def _new_oid() -> str:
        return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _clean_path(path: str) -> str:
    path = path.lstrip("/")
    if not path or any(part in ("", ".", "..") for part in path.split("/")):
        raise HubError(400, f"Invalid path in repo: {path!r}")
    return path


def _validate_card_metadata(content: str) -> list[str]:
    """The errors the Hub reports for a README's YAML front matter (only the checks that matter here)."""
    if not content.startswith("---"):
        return []
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if match is None:
        return ["README.md front matter has no closing '---' line"]
    try:
        import yaml  # a dependency of the package under test; the Hub parses YAML too
    except ImportError:  # pragma: no cover - pyyaml is installed with the package
        return []
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"Invalid YAML: {error}"]
    if not isinstance(metadata, dict):
        return ["The YAML front matter must be a mapping"]
    errors = []
    for entry in metadata.get("model-index", []) or []:
        if not isinstance(entry, dict) or "name" not in entry or not isinstance(entry.get("results"), list):
            errors.append("model-index entries need a 'name' and a 'results' list")
            continue
        for result in entry["results"]:
            if not {"task", "dataset", "metrics"} <= set(result):
                errors.append("model-index results need 'task', 'dataset' and 'metrics'")
            elif not all({"type", "value"} <= set(metric) for metric in result["metrics"]):
                errors.append("model-index metrics need a 'type' and a 'value'")
    return errors


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output clean
        pass

    # Dispatch
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        self.server.requests.append((method, path))
        try:
            self._route(method, path, query, body)
        except HubError as error:
            self._send(error.status, {"error": error.message, **error.extra}, code=error.code, message=error.message,
                       head=method == "HEAD")

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        store = self.server.store
        if method == "GET" and path == "/api/whoami-v2":
            return self._send(200, {"type": "user", "name": USER, "orgs": [],
                                    "auth": {"accessToken": {"role": "write", "displayName": "test"}}})
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body or b"{}")
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{self.server.endpoint}/{prefix}{repo_id}"
            try:
                store.create_repo(repo_type, repo_id)
            except HubError as error:
                # The Hub names the existing repo in a 409, and `create_repo(exist_ok=True)` reads that url.
                error.extra["url"] = url
                raise
            return self._send(200, {"url": url, "name": repo_id})
        if method == "POST" and path == "/api/validate-yaml":
            errors = _validate_card_metadata(json.loads(body or b"{}").get("content", ""))
            return self._send(400 if errors else 200,
                              {"errors": [{"message": e} for e in errors], "warnings": []})
        match = re.fullmatch(r"/api/(model|dataset|space)s/([^/]+/[^/]+)(/.*)?", path)
        if match:
            return self._api(method, match.group(1), match.group(2), match.group(3) or "", query, body)
        match = re.fullmatch(r"/(?:(dataset|space)s/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match and method in ("GET", "HEAD"):
            return self._resolve(method, match.group(1) or "model", match.group(2), match.group(3), match.group(4))
        raise HubError(404, f"Not implemented by the test Hub: {method} {path}")

    def _api(self, method: str, repo_type: str, repo_id: str, rest: str, query: dict, body: bytes) -> None:
        store = self.server.store
        if method == "GET" and (rest == "" or rest.startswith("/revision/")):
            commit = store.resolve(repo_type, repo_id, rest[len("/revision/"):] or "main")
            return self._send(200, {
                "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": commit["oid"],
                "private": False, "disabled": False, "gated": False, "tags": [],
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit["date"])),
                "siblings": [{"rfilename": name} for name in sorted(commit["files"])],
            })
        match = re.fullmatch(r"/tree/([^/]+)(?:/(.*))?", rest)
        if method == "GET" and match:
            commit = store.resolve(repo_type, repo_id, match.group(1))
            return self._send(200, self._tree(repo_type, repo_id, commit, (match.group(2) or "").strip("/"),
                                              query.get("recursive", ["false"])[0].lower() in ("1", "true")))
        match = re.fullmatch(r"/preupload/([^/]+)", rest)
        if method == "POST" and match:
            commit = store.resolve(repo_type, repo_id, match.group(1))
            files = json.loads(body)["files"]
            return self._send(200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": commit["files"].get(_clean_path(f["path"]))}
                for f in files
            ]})
        match = re.fullmatch(r"/commit/([^/]+)", rest)
        if method == "POST" and match:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            commit = store.commit(repo_type, repo_id, match.group(1), lines)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return self._send(200, {"success": True, "commitOid": commit["oid"], "pullRequestUrl": None,
                                    "commitUrl": f"{self.server.endpoint}/{prefix}{repo_id}/commit/{commit['oid']}"})
        raise HubError(404, f"Not implemented by the test Hub: {method} /api/{repo_type}s/{repo_id}{rest}")

    def _tree(self, repo_type: str, repo_id: str, commit: dict, folder: str, recursive: bool) -> list[dict]:
        snapshot = self.server.store.snapshot_dir(repo_type, repo_id, commit["oid"])
        prefix = folder + "/" if folder else ""
        entries, folders = [], set()
        for name in sorted(commit["files"]):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            for depth in range(1, rest.count("/") + 1):
                folders.add(prefix + "/".join(rest.split("/")[:depth]))
            size = (snapshot / name).stat().st_size
            entries.append({"type": "file", "path": name, "oid": commit["files"][name], "size": size})
        if folder and not entries and not folders:
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        return [{"type": "directory", "path": f, "oid": ""} for f in sorted(folders)] + entries

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, filename: str) -> None:
        store = self.server.store
        commit = store.resolve(repo_type, repo_id, revision)
        data = store.read(repo_type, repo_id, commit, filename)
        headers = {"X-Repo-Commit": commit["oid"], "ETag": f'"{commit["files"][filename]}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(data)

    def _send(self, status: int, payload, code: str | None = None, message: str | None = None,
              head: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
        if message:
            self.send_header("X-Error-Message", message.encode("ascii", "replace").decode())
        self.end_headers()
        if not head:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: HubStore):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.store = store
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str]] = []


class HubServer:
    """The test Hub, served from a background thread on a free port of 127.0.0.1.

    Args:
        root (`str` or `os.PathLike`):
            Folder that holds the repos (one snapshot folder per commit).

    Attributes:
        endpoint (`str`): the base URL to use as `HF_ENDPOINT`, set once started.
        store (`HubStore`): the repos, for assertions on what was pushed.
        requests (`list[tuple[str, str]]`): every request's method and path, in order.

    Example:

    >>> with HubServer(tmp_path / "hub") as hub:              # doctest: +SKIP
    ...     HfApi(endpoint=hub.endpoint, token="dummy").create_repo("me/x")
    """

    def __init__(self, root):
        self.store = HubStore(Path(root))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HubServer":
        self._server = _Server(self.store)
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self._server.requests

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[str]:
        """The file names of a repo at a revision, sorted."""
        return sorted(self.store.resolve(repo_type, repo_id, revision)["files"])

    def read(self, repo_id: str, filename: str, revision: str = "main", repo_type: str = "model") -> bytes:
        commit = self.store.resolve(repo_type, repo_id, revision)
        return self.store.read(repo_type, repo_id, commit, filename)

    def client_env(self, hf_home) -> dict[str, str]:
        """Environment variables that point `huggingface_hub` (in this or a child process) at this server."""
        return {"HF_ENDPOINT": self.endpoint, "HF_TOKEN": "dummy-test-token", "HF_HUB_DISABLE_XET": "1",
                "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
