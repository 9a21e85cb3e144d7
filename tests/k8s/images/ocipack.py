#!/usr/bin/env python3
"""Write a single-layer OCI image archive (an OCI image layout in a tar file) from host files.

No registry, daemon or Docker: the layer is a tar made here, the config, manifest and index are
JSON, and every blob is named by its sha256 digest. `ctr images import` reads the result.
Used by tests/k8s/images.sh; standard library only.

    ocipack.py --name docker.io/library/x:tag --out x.tar --entrypoint /usr/local/bin/x \
        --user 65532:65532 --file /host/path:/image/path[:mode] ... --dir /tmp:1777 ...

The archive is reproducible: the same inputs give the same bytes (fixed mtimes, owners, order).
"""
import argparse
import hashlib
import io
import json
import os
import tarfile

EPOCH = 0  # every mtime and the config's `created`: reproducible digests


def add_parents(tar, seen, path):
    """Add the missing parent directories of `path` (an image path without the leading '/')."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d and d not in seen:
            seen.add(d)
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)


def layer_tar(files, dirs, texts):
    """The layer as an uncompressed tar: dirs, then files (dereferenced), then generated text files."""
    buf = io.BytesIO()
    seen = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, mode in sorted(dirs):
            rel = path.strip("/")
            add_parents(tar, seen, rel)
            if rel in seen:
                continue
            seen.add(rel)
            info = tarfile.TarInfo(rel)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, EPOCH
            tar.addfile(info)
        entries = [(dst.strip("/"), src, mode, None) for src, dst, mode in files]
        entries += [(dst.strip("/"), None, mode, data) for dst, mode, data in texts]
        for rel, src, mode, data in sorted(entries, key=lambda e: e[0]):
            add_parents(tar, seen, rel)
            if data is None:
                with open(src, "rb") as f:  # follows symlinks: the image gets the real file
                    data = f.read()
                if mode is None:
                    mode = os.stat(src).st_mode & 0o7777
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), mode if mode is not None else 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def blob(tar, data):
    """Add `data` as a blob of the layout; return its descriptor fields."""
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    tar.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="full image reference, e.g. docker.io/library/x:1")
    ap.add_argument("--out", required=True)
    ap.add_argument("--entrypoint", required=True)
    ap.add_argument("--arg", action="append", default=[], help="default arguments (the image's Cmd)")
    ap.add_argument("--user", default="65532:65532")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--file", action="append", default=[], help="HOST:IMAGE[:OCTAL-MODE]")
    ap.add_argument("--dir", action="append", default=[], help="IMAGE-PATH[:OCTAL-MODE]")
    ap.add_argument("--text", action="append", default=[], help="IMAGE-PATH=CONTENT (mode 0644)")
    a = ap.parse_args()

    files = []
    for spec in a.file:
        parts = spec.split(":")
        files.append((parts[0], parts[1], int(parts[2], 8) if len(parts) > 2 else None))
    dirs = []
    for spec in a.dir:
        path, _, mode = spec.partition(":")
        dirs.append((path, int(mode, 8) if mode else 0o755))
    texts = []
    for spec in a.text:
        path, _, content = spec.partition("=")
        texts.append((path, 0o644, content.encode()))

    layer = layer_tar(files, dirs, texts)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": a.user,
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] + a.env,
            "Entrypoint": [a.entrypoint],
            "Cmd": a.arg or None,
            "WorkingDir": a.workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "tests/k8s/images.sh"}],
    }
    if config["config"]["Cmd"] is None:
        del config["config"]["Cmd"]
    dumps = lambda o: json.dumps(o, sort_keys=True, separators=(",", ":")).encode()  # noqa: E731

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(tar, layer)}
        config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(tar, dumps(config))}
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
        manifest_desc = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **blob(tar, dumps(manifest)),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                "io.containerd.image.name": a.name,
                "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1],
            },
        }
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [manifest_desc]}
        for name, data in (("oci-layout", dumps({"imageLayoutVersion": "1.0.0"})), ("index.json", dumps(index))):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, a.out)
    print(manifest_desc["digest"])


if __name__ == "__main__":
    main()
