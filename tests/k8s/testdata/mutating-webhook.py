#!/usr/bin/env python3
"""Minimal mutating admission webhook for tests/k8s/smoke.sh (standard library only).

Serves HTTPS on 127.0.0.1 (port 0 = any free port; the chosen port is printed on
stdout), answers AdmissionReview v1 for Pods with a JSON Patch that adds the label
smoke.syncmesh.io/mutated=true and records in an annotation which user created
the pod (for a Deployment's pods: the ReplicaSet controller's service account).

usage: mutating-webhook.py CERT KEY [PORT]
"""
import http.server
import json
import ssl
import sys
import base64


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        req = review["request"]
        obj = req.get("object") or {}
        meta = obj.get("metadata") or {}
        user = req.get("userInfo", {}).get("username", "")
        patch = []
        if "labels" not in meta:
            patch.append({"op": "add", "path": "/metadata/labels", "value": {}})
        patch.append({"op": "add", "path": "/metadata/labels/smoke.syncmesh.io~1mutated", "value": "true"})
        if "annotations" not in meta:
            patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        patch.append({"op": "add", "path": "/metadata/annotations/smoke.syncmesh.io~1created-by", "value": user})
        resp = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": req["uid"],
                "allowed": True,
                "patchType": "JSONPatch",
                "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
            },
        }
        body = json.dumps(resp).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        sys.stderr.write("admitted %s %s/%s by %s\n" % (req.get("operation"), req.get("namespace"),
                                                     meta.get("name") or meta.get("generateName"), user))
        sys.stderr.flush()


def main():
    cert, key = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
