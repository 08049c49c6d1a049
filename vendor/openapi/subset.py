#!/usr/bin/env python3
"""Cuts a vendor's OpenAPI description down to the operations a Tandem preset calls.

The full descriptions are large (GitHub's is 13 MB); the tests need only a handful of
operations and the components they refer to. This keeps the named operations byte-for-byte
as published (same keys, same values) and every component reachable from them through
`$ref`, and drops the rest.

    python3 vendor/openapi/subset.py [--allow-missing] IN OUT "METHOD /path" ["METHOD /path" ...]

An argument `#/definitions/Name` (or `#/components/...`) keeps that component too, for an
answer shape no kept operation names directly. `--allow-missing` is for an excerpt (GitLab's, see gitlab/README.md): a reference to a
component the input lacks is left as it is and listed under `x-unresolved` instead of
stopping the script.

IN is JSON or YAML (OpenAPI 3.x or Swagger 2.0); OUT is written as JSON with sorted keys, so
a refresh shows as a readable diff. Only the standard library is needed for JSON input;
YAML input needs PyYAML.
"""

import json
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml  # only for YAML input

        return yaml.safe_load(text)
    return json.loads(text)


def refs_in(node, out):
    """Every `$ref` string under `node`."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.add(v)
            else:
                refs_in(v, out)
    elif isinstance(node, list):
        for v in node:
            refs_in(v, out)


def resolve(doc, ref):
    if not ref.startswith("#/"):
        raise SystemExit(f"external reference not supported: {ref}")
    node = doc
    for token in ref[2:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[token]
    return node


def place(out, ref, value):
    """Puts `value` at `ref` inside `out`, creating tables on the way."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in ref[2:].split("/")]
    node = out
    for t in tokens[:-1]:
        node = node.setdefault(t, {})
    node[tokens[-1]] = value


def main(argv):
    allow_missing = "--allow-missing" in argv
    argv = [a for a in argv if a != "--allow-missing"]
    if len(argv) < 4:
        raise SystemExit(__doc__)
    doc = load(argv[1])
    wanted = []
    extra = set()
    for spec in argv[3:]:
        if spec.startswith("#/"):
            extra.add(spec)  # a component to keep though no kept operation names it
            continue
        method, path = spec.split(" ", 1)
        wanted.append((method.lower(), path))

    out = {k: doc[k] for k in ("openapi", "swagger", "info", "servers", "host", "basePath",
                               "securityDefinitions", "security") if k in doc}
    out["paths"] = {}
    for method, path in wanted:
        item = doc["paths"].get(path)
        if item is None or method not in item:
            raise SystemExit(f"{method.upper()} {path} is not in {argv[1]}")
        kept = out["paths"].setdefault(path, {})
        kept[method] = item[method]
        # Parameters shared by every method of the path item.
        if "parameters" in item:
            kept["parameters"] = item["parameters"]
    if "components" in doc and "securitySchemes" in doc["components"]:
        out.setdefault("components", {})["securitySchemes"] = doc["components"]["securitySchemes"]

    # Every component reachable from what is kept, transitively.
    seen = set()
    missing = set()
    todo = set()
    refs_in(out["paths"], todo)
    todo |= extra
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            value = resolve(doc, ref)
        except KeyError:
            if not allow_missing:
                raise SystemExit(f"{ref} is not in {argv[1]}")
            missing.add(ref)
            continue
        place(out, ref, value)
        refs_in(value, todo)

    if missing:
        out["x-unresolved"] = sorted(missing)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(f"{argv[2]}: {len(wanted)} operations, {len(seen)} components, {len(missing)} unresolved")


if __name__ == "__main__":
    main(sys.argv)
