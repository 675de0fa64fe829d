"""HTTP handling for the apiserver stand-in: authentication, authorization, discovery, CRUD, watch, health."""

from __future__ import annotations

import json
import ssl
import time
import urllib.parse
import uuid

import yaml

from . import apiresources as ar
from . import authz, klog, protobuf
from .common import micro_time
from .etcd import EtcdError
from .patch import PatchError, json_patch, merge_patch
from .store import StoreError
from .tlsserver import Handler

SRC = "handler.go:153"
UNKNOWN_BODY = ("the body of the request was in an unknown format - accepted media types include: "
                "application/json, application/yaml")
UNKNOWN_PATCH = ("the body of the request was in an unknown format - accepted media types include: "
                 "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                 "application/strategic-merge-patch+json")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


NOT_FOUND = status(404, "NotFound", "the server could not find the requested resource")
METHOD_NOT_ALLOWED = status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def _selector_matches(selector: str, labels: dict) -> bool:
    for term in [t.strip() for t in selector.split(",") if t.strip()]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "==" in term or "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: dict, path: str) -> str:
    cur: object = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return ""
    return str(cur).lower() if isinstance(cur, bool) else str(cur)


def _fields_match(selector: str, obj: dict) -> bool:
    for term in [t.strip() for t in selector.split(",") if t.strip()]:
        neg = "!=" in term
        k, v = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if (_field(obj, k.strip()) == v.strip()) == neg:
            return False
    return True


class ApiHandler(Handler):
    """One request; self.server.api is the ApiServer (config, store, health)."""

    # -- plumbing -----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        self.url_path = url.path.rstrip("/") or "/"
        self.code = 200
        user = self._authenticate()
        if user is None:
            self._reply(401, status(401, "Unauthorized", "Unauthorized"))
            api.audit(self, None)
            return
        try:
            user = self._impersonate(user)
            if user is None:
                api.audit(self, None)
                return
        except StoreError as err:
            self._reply(err.code, status(err.code, err.reason, err.message))
            return
        self.user = user
        try:
            self._route(method, user)
        except StoreError as err:
            self._reply(err.code, status(err.code, err.reason, err.message))
        except EtcdError as err:
            klog.error(SRC, "etcd request failed", err=str(err))
            self._reply(500, status(500, "InternalError", f"Internal error occurred: {err}"))
        except (BrokenPipeError, ConnectionResetError):
            pass
        api.audit(self, user)

    def _reply(self, code: int, body: object) -> None:
        self.code = code
        self.send_json(code, body)

    def _authenticate(self) -> authz.User | None:
        api = self.server.api
        ident = self.peer_identity()
        if ident:
            cn, orgs = ident
            return authz.User(cn, orgs + [authz.AUTHENTICATED])
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and api.tokens:
            entry = api.tokens.get(auth[7:].strip())
            if entry:
                return authz.User(entry[0], entry[1] + [authz.AUTHENTICATED])
            return None
        if api.anonymous:
            return authz.User(authz.ANONYMOUS, [authz.UNAUTHENTICATED])
        return None

    def _impersonate(self, user: authz.User) -> authz.User | None:
        """Impersonate-User/-Group headers, allowed when the caller may 'impersonate' users (and groups)."""
        target = self.headers.get("Impersonate-User")
        groups = self.headers.get_all("Impersonate-Group") or []
        if not target:
            return user
        checks = [authz.Attributes("impersonate", self.url_path, True, "", "users", "", "", target)]
        checks += [authz.Attributes("impersonate", self.url_path, True, "", "groups", "", "", g) for g in groups]
        for a in checks:
            if not self._allowed(user, a):
                return None
        return authz.User(target, groups + ([authz.AUTHENTICATED] if target != authz.ANONYMOUS else []))

    def _allowed(self, user: authz.User, a: authz.Attributes) -> bool:
        api = self.server.api
        if api.node_restriction:
            denial = authz.node_restriction(user, a)
            if denial:
                self._reply(403, status(403, "Forbidden", denial, {"name": a.name, "kind": a.resource}))
                return False
        if authz.authorize(user, a, api.authz_modes, api.load_policy):
            return True
        self._reply(403, status(403, "Forbidden", authz.forbidden_message(user, a),
                                {"name": a.name, "group": a.api_group, "kind": a.resource} if a.resource_request else None))
        return False

    # -- routing ------------------------------------------------------------------------------------

    def _route(self, method: str, user: authz.User) -> None:
        api = self.server.api
        path = self.url_path
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] in ("api", "apis"):
            if parts[0] == "api":
                group, version, rest = "", (parts[1] if len(parts) > 1 else ""), parts[2:]
                base_len = 2
            else:
                group = parts[1] if len(parts) > 1 else ""
                version = parts[2] if len(parts) > 2 else ""
                rest = parts[3:]
                base_len = 3
            if len(parts) <= base_len:
                a = authz.Attributes(method.lower(), path, False)
                if self._allowed(user, a):
                    self._discovery(method, group, version, parts)
                return
            self._resource(method, user, group, version, rest)
            return
        a = authz.Attributes(method.lower(), path, False)
        if not self._allowed(user, a):
            return
        if method != "GET":
            self._reply(405, METHOD_NOT_ALLOWED)
            return
        if path == "/version":
            self._reply(200, api.info.version_info())
            return
        if path == "/openapi/v3":
            self._reply(200, ar.openapi_v3_root())
            return
        if path.startswith("/openapi/v3/"):
            segs = path[len("/openapi/v3/"):].split("/")
            group, version = ("", segs[1]) if segs[0] == "api" and len(segs) == 2 else \
                ((segs[1], segs[2]) if segs[0] == "apis" and len(segs) == 3 else ("", ""))
            doc = ar.openapi_v3_gv(group, version, api.info.git_version) if version else None
            if doc is not None:
                self._reply(200, doc)
                return
        for check in ("healthz", "livez", "readyz"):
            if path == f"/{check}" or path.startswith(f"/{check}/"):
                self._health(check, path[len(check) + 2:])
                return
        self._reply(404, NOT_FOUND)

    def _discovery(self, method: str, group: str, version: str, parts: list[str]) -> None:
        api = self.server.api
        if method != "GET":
            self._reply(405, METHOD_NOT_ALLOWED)
            return
        doc: dict | None
        if parts == ["api"]:
            doc = ar.api_versions(api.advertise)
        elif parts == ["apis"]:
            doc = ar.api_group_list()
        elif parts[0] == "apis" and len(parts) == 2:
            doc = ar.api_group(group) if group in ar.groups() else None
        else:
            doc = ar.resource_list(group, version)
        if doc is None:
            self._reply(404, NOT_FOUND)
        else:
            self._reply(200, doc)

    def _health(self, check: str, sub: str) -> None:
        api = self.server.api
        checks = api.health_checks(check)
        if sub:
            result = checks.get(sub)
            if result is None:
                self.send_text(404, "404 page not found\n")
            elif result:
                self.send_text(200, "ok")
            else:
                self.send_text(500, f"internal server error: {sub} check failed\n")
            return
        ok = all(checks.values())
        if "verbose" in self.query or not ok:
            lines = [f"[+]{name} ok" if good else f"[-]{name} failed: reason withheld" for name, good in checks.items()]
            lines.append(f"{check} check {'passed' if ok else 'failed'}")
            self.send_text(200 if ok else 500, "\n".join(lines) + "\n")
        else:
            self.send_text(200, "ok")

    # -- resources ----------------------------------------------------------------------------------

    def _resource(self, method: str, user: authz.User, group: str, version: str, rest: list[str]) -> None:
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and ar.find(group, version, rest[2]) and ar.find(group, version, rest[2]).namespaced:
            namespace, rest = rest[1], rest[2:]
        res = ar.find(group, version, rest[0])
        if res is not None and res.plural == "nodes" and len(rest) >= 3 and rest[2] == "proxy":
            a = authz.Attributes("get" if method == "GET" else method.lower(), self.url_path, True, "", "nodes", "proxy",
                                 "", rest[1])
            if self._allowed(user, a):
                self._node_proxy(method, rest[1], "/" + "/".join(rest[3:]))
            return
        if res is None or len(rest) > 3:
            self._reply(404, NOT_FOUND)
            return
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in res.subresources:
            self._reply(404, NOT_FOUND)
            return
        watch = self.query.get("watch") in ("true", "1")
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete" if name else "deletecollection"}[method]
        if method == "POST" and name and sub != "eviction":
            self._reply(405, METHOD_NOT_ALLOWED)
            return
        if method == "POST" and not name:
            body = self._json_body()
            if body is None:
                return
            name = (body.get("metadata") or {}).get("name", "")
            self.body = body
        a = authz.Attributes(verb, self.url_path, True, group, res.plural, sub, namespace, name)
        if not self._allowed(user, a):
            return
        store = self.server.api.store
        dry_run = self.query.get("dryRun") == "All"
        if res.group == "authorization.k8s.io":
            self._review(method, user, res)
            return
        if method == "GET":
            if watch:
                self._watch(res, namespace, name)
            elif name:
                obj = store.get(res, namespace, name)
                self._reply(200, ar.table(res, [obj], obj["metadata"]["resourceVersion"]) if self._wants_table() else obj)
            else:
                self._list(res, namespace)
        elif method == "POST" and sub == "eviction":
            self._evict(res, namespace, name, dry_run)
        elif method == "POST":
            body = self.body
            if body.get("kind") not in (None, res.kind):
                self._reply(400, status(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) "
                                                           f"does not match the expected API version ({res.group_version})"))
                return
            if res.namespaced and res.plural != "namespaces":
                self._require_namespace(namespace)
            self._reply(201, self.server.api.on_write(res, store.create(res, namespace, body, dry_run)))
        elif method == "PUT":
            body = self._json_body()
            if body is None:
                return
            if (body.get("metadata") or {}).get("name") not in (None, name):
                self._reply(400, status(400, "BadRequest", "the name of the object does not match the name on the URL"))
                return
            current = store.get(res, namespace, name)
            merged = self._merge_subresource(res, sub, current, body)
            rv = (body.get("metadata") or {}).get("resourceVersion", "")
            self._reply(200, store.update(res, namespace, name, merged, rv, dry_run))
        elif method == "PATCH":
            self._patch(res, namespace, name, sub, dry_run)
        elif method == "DELETE":
            if not name:
                self._reply(405, status(405, "MethodNotAllowed", "deletecollection is not supported by this stand-in"))
                return
            if res.plural == "namespaces" and name in PROTECTED_NAMESPACES:
                self._reply(403, status(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted'))
                return
            obj = store.delete(res, namespace, name, dry_run)
            self._reply(200, obj)

    def _review(self, method: str, user: authz.User, res: ar.Resource) -> None:
        """SubjectAccessReview (kubelet webhook authz) and SelfSubjectAccessReview (kubectl auth can-i)."""
        if method != "POST":
            self._reply(405, METHOD_NOT_ALLOWED)
            return
        body = self.body
        spec = body.get("spec") or {}
        subject = user
        if res.plural == "subjectaccessreviews":
            subject = authz.User(spec.get("user", ""), list(spec.get("groups") or []))
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if ra:
            a = authz.Attributes(ra.get("verb", ""), "", True, ra.get("group", ""), ra.get("resource", ""),
                                 ra.get("subresource", ""), ra.get("namespace", ""), ra.get("name", ""))
        else:
            nra = nra or {}
            a = authz.Attributes(nra.get("verb", ""), nra.get("path", ""), False)
        api = self.server.api
        allowed = authz.authorize(subject, a, api.authz_modes, api.load_policy)
        body["status"] = {"allowed": allowed}
        if not allowed:
            body["status"]["reason"] = ""
        body.setdefault("metadata", {})
        body["apiVersion"], body["kind"] = res.group_version, res.kind
        self._reply(201, body)

    def _node_proxy(self, method: str, name: str, path: str) -> None:
        """nodes/{name}/proxy/...: call the kubelet as the real one does (--kubelet-client-*, preferred address)."""
        api = self.server.api
        node = api.store.get(ar.find("", "v1", "nodes"), "", name)
        addresses = {a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or []}
        host = next((addresses[t] for t in api.kubelet_address_types if addresses.get(t)), None)
        if host is None:
            self._reply(503, status(503, "ServiceUnavailable", f'no preferred addresses found; known addresses: {addresses}'))
            return
        port = int(node.get("status", {}).get("daemonEndpoints", {}).get("kubeletEndpoint", {}).get("Port") or 10250)
        url = f"https://{host}:{port}{path}"
        query = urllib.parse.urlsplit(self.path).query
        try:
            code, ctype, body = api.kubelet_get(host, port, path + (f"?{query}" if query else ""))
        except ssl.SSLCertVerificationError as err:
            self._reply(500, status(500, "InternalError", f'Get "{url}": tls: failed to verify certificate: x509: {err.verify_message}'))
            return
        except OSError as err:
            self._reply(503, status(503, "ServiceUnavailable", f'error trying to reach service: dial tcp {host}:{port}: {err}'))
            return
        self.code = code
        self.send_body(code, body, ctype)

    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _json_body(self) -> dict | None:
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf" and "accessreviews" in self.url_path:
            try:
                return protobuf.access_review(self.read_body())
            except (ValueError, IndexError):
                pass
        if ctype not in ("application/json", "application/yaml", "*/*", ""):
            self.read_body()
            # 415 is what makes client-go fall back from protobuf/CBOR to JSON
            self._reply(415, status(415, "UnsupportedMediaType", UNKNOWN_BODY))
            return None
        raw = self.read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            try:
                body = yaml.safe_load(raw)
            except yaml.YAMLError:
                body = None
        if not isinstance(body, dict):
            self._reply(400, status(400, "BadRequest", UNKNOWN_BODY))
            return None
        return body

    def _require_namespace(self, namespace: str) -> None:
        ns_res = ar.find("", "v1", "namespaces")
        try:
            self.server.api.store.get(ns_res, "", namespace)
        except StoreError as err:
            raise StoreError(404, "NotFound", f'namespaces "{namespace}" not found') from err

    @staticmethod
    def _merge_subresource(res: ar.Resource, sub: str, current: dict, new: dict) -> dict:
        """Main resource writes keep status, /status writes change only status (the real strategies do this)."""
        if "status" not in res.subresources:
            return new
        if sub == "status":
            out = json.loads(json.dumps(current))
            out["status"] = new.get("status", {})
            return out
        out = json.loads(json.dumps(new))
        if "status" in current:
            out["status"] = current["status"]
        return out

    def _list(self, res: ar.Resource, namespace: str) -> None:
        items, revision = self.server.api.store.list(res, namespace)
        if self.query.get("labelSelector"):
            items = [o for o in items if _selector_matches(self.query["labelSelector"], o["metadata"].get("labels") or {})]
        if self.query.get("fieldSelector"):
            items = [o for o in items if _fields_match(self.query["fieldSelector"], o)]
        rv = str(revision)
        if self._wants_table():
            self._reply(200, ar.table(res, items, rv))
            return
        for o in items:
            o.setdefault("apiVersion", res.group_version)
            o.setdefault("kind", res.kind)
        self._reply(200, {"kind": f"{res.kind}List", "apiVersion": res.group_version, "metadata": {"resourceVersion": rv},
                          "items": items})

    def _patch(self, res: ar.Resource, namespace: str, name: str, sub: str, dry_run: bool) -> None:
        store = self.server.api.store
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        raw = self.read_body()
        try:
            patch = yaml.safe_load(raw) if ctype == "application/apply-patch+yaml" else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError):
            self._reply(400, status(400, "BadRequest", "error decoding patch"))
            return
        try:
            current = store.get(res, namespace, name)
        except StoreError as err:
            if ctype == "application/apply-patch+yaml" and err.code == 404 and isinstance(patch, dict):
                if res.namespaced:
                    self._require_namespace(namespace)
                patch.setdefault("metadata", {})["name"] = name
                self._reply(201, self.server.api.on_write(res, store.create(res, namespace, patch, dry_run)))
                return
            raise
        try:
            if ctype == "application/json-patch+json":
                patched = json_patch(current, patch)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/apply-patch+yaml"):
                patched = merge_patch(current, patch)
            else:
                self._reply(415, status(415, "UnsupportedMediaType", UNKNOWN_PATCH))
                return
        except (PatchError, KeyError, IndexError, ValueError, TypeError) as err:
            self._reply(422, status(422, "Invalid", f"the server rejected our request due to an error in our request: {err}"))
            return
        merged = self._merge_subresource(res, sub, current, patched)
        rv = (patch.get("metadata") or {}).get("resourceVersion", "") if isinstance(patch, dict) else ""
        self._reply(200, store.update(res, namespace, name, merged, rv, dry_run))

    def _evict(self, res: ar.Resource, namespace: str, name: str, dry_run: bool) -> None:
        store = self.server.api.store
        store.get(res, namespace, name)  # 404 if the pod is gone, as the real one says
        store.delete(res, namespace, name, dry_run)
        self._reply(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})

    def _watch(self, res: ar.Resource, namespace: str, name: str) -> None:
        """Poll-based watch: ADDED/MODIFIED/DELETED events as chunked JSON lines until timeoutSeconds."""
        store = self.server.api.store
        timeout = min(float(self.query.get("timeoutSeconds") or 1800), 1800)
        deadline = time.time() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def emit(kind: str, obj: dict) -> None:
            data = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def snapshot() -> dict[str, dict]:
            items, revision = store.list(res, namespace)
            self.revision = revision
            labels, fields = self.query.get("labelSelector"), self.query.get("fieldSelector")
            return {o["metadata"]["name"]: o for o in items
                    if (not name or o["metadata"]["name"] == name)
                    and (not labels or _selector_matches(labels, o["metadata"].get("labels") or {}))
                    and (not fields or _fields_match(fields, o))}

        seen = snapshot()
        start_rv = self.query.get("resourceVersion", "")
        if start_rv in ("", "0") or self.query.get("sendInitialEvents") == "true":
            for obj in seen.values():
                emit("ADDED", obj)
        if self.query.get("sendInitialEvents") == "true":
            # watch-list clients (client-go's WatchListClient) wait for this bookmark to end the initial sync
            emit("BOOKMARK", {"kind": res.kind, "apiVersion": res.group_version,
                              "metadata": {"resourceVersion": str(self.revision),
                                           "annotations": {"k8s.io/initial-events-end": "true"}}})
        stop = self.server.api.stop
        while time.time() < deadline and not stop.is_set():
            stop.wait(1)
            try:
                now = snapshot()
            except EtcdError:
                continue
            for key, obj in now.items():
                if key not in seen:
                    emit("ADDED", obj)
                elif obj["metadata"]["resourceVersion"] != seen[key]["metadata"]["resourceVersion"]:
                    emit("MODIFIED", obj)
            for key, obj in seen.items():
                if key not in now:
                    emit("DELETED", obj)
            seen = now
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


def audit_event(handler: ApiHandler, user: authz.User | None, level: str) -> dict:
    stamp = micro_time()
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete", "requestURI": handler.path, "verb": handler.command.lower(),
        "user": {"username": user.name, "groups": user.groups} if user else {},
        "sourceIPs": [handler.client_address[0]], "userAgent": handler.headers.get("User-Agent", ""),
        "responseStatus": {"metadata": {}, "code": getattr(handler, "code", 0)},
        "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
    }
