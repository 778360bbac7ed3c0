#!/usr/bin/env python3
"""Check the module graph of dynserve: the one place the allowed dependencies are written.

Modules are the folders src/<module>/ and registry/ (each a static library, see
src/CMakeLists.txt); "plugin_abi" is the public plugin header plugins/include/dynserve/plugin.h.
Fails (exit 1, one line per problem) when
  - a file includes a header of a module its module may not use (ALLOWED below),
  - a private header (*_internal.h) is included from outside its own folder,
  - two headers include each other, or the allowed graph itself has a cycle,
  - a header name exists in two modules (includes are by bare name),
  - CivetWeb's header is included anywhere but src/http/http.c, SQLite's anywhere but
    registry/registry_sqlite.c, or libpq's anywhere but registry/registry_pg.c,
  - a ds_module(...) in src/CMakeLists.txt links a module that ALLOWED does not list.
src/main.c may include every module's public header (it wires them). Tests, fuzzers and
benchmarks are not modules and are not checked.
Usage: scripts/check-deps.py [repo root]   (run by scripts/test.sh before building)
"""
import os
import re
import sys

# module -> modules it may include (and link). One-way: nothing lists a module above itself.
ALLOWED = {
    "base": [],
    "http": ["base", "plugin_abi"],
    "oip": ["base", "plugin_abi"],
    "registry": ["base"],
    "plugin": ["oip", "base", "plugin_abi"],
    "deploy": ["plugin", "registry", "base", "plugin_abi"],
    "serve": ["deploy", "oip", "http", "base", "plugin_abi"],
    "auth": ["registry", "http", "base", "plugin_abi"],
    "manage": ["auth", "deploy", "registry", "plugin", "http", "base", "plugin_abi"],
    "cluster": ["deploy", "registry", "base", "plugin_abi"],  # scale-out: reconcile, heartbeat
    "ctl": [],  # the command-line client: a plain HTTP client (libcurl, cJSON) of the server
}
# Spelled in two parts so that `git grep -l` for either header name lists only its includers.
ONLY_INCLUDERS = {"civetweb" ".h": ["src/http/http.c"],
                  "sqlite3" ".h": ["registry/registry_sqlite.c"],
                  "libpq-fe" ".h": ["registry/registry_pg.c"]}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def module_dirs(root):
    dirs = {m: os.path.join("src", m) for m in ALLOWED if m != "registry"}
    dirs["registry"] = "registry"
    dirs["plugin_abi"] = os.path.join("plugins", "include")
    return dirs


def sources(root, rel):
    base = os.path.join(root, rel)
    for dirpath, _, names in os.walk(base):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, n), root)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    root = os.path.abspath(root)
    dirs = module_dirs(root)
    problems = []

    def check_acyclic():
        state = {}

        def visit(m, path):
            if state.get(m) == 1:
                problems.append("allowed graph has a cycle: " + " -> ".join(path + [m]))
                return
            if state.get(m) == 2:
                return
            state[m] = 1
            for d in ALLOWED.get(m, []):
                visit(d, path + [m])
            state[m] = 2

        for m in ALLOWED:
            visit(m, [])

    check_acyclic()

    # header name -> (module, path); includes are by bare name ("deploy.h", "dynserve/plugin.h")
    headers = {}
    files = {}
    for mod, rel in dirs.items():
        for f in sources(root, rel):
            files[f] = mod
            if f.endswith(".h"):
                name = os.path.relpath(f, rel)
                if name in headers:
                    problems.append(f"{f}: header name {name} also in {headers[name][1]}")
                headers[name] = (mod, f)
    files["src/main.c"] = "main"

    edges = {}
    for f, mod in sorted(files.items()):
        with open(os.path.join(root, f), encoding="utf-8") as fh:
            text = fh.read()
        for kind, inc in INCLUDE.findall(text):
            if inc in ONLY_INCLUDERS:
                if not any(f == o or (o.endswith("/") and f.startswith(o))
                           for o in ONLY_INCLUDERS[inc]):
                    problems.append(f"{f}: includes {inc} (only {', '.join(ONLY_INCLUDERS[inc])} may)")
                continue
            if kind == "<" or inc not in headers:
                continue
            target_mod, target = headers[inc]
            edges.setdefault(f, set()).add(target)
            if target_mod == mod:
                continue
            if inc.endswith("_internal.h"):
                problems.append(f"{f}: includes {target}, private to {os.path.dirname(target)}/")
            elif mod != "main" and target_mod not in ALLOWED[mod]:
                problems.append(f"{f}: {mod} may not include {inc} ({target_mod}); "
                                f"{mod} may use: {', '.join(ALLOWED[mod]) or 'libc only'}")
    for a, targets in edges.items():
        for b in targets:
            if a in edges.get(b, ()):
                if a < b:
                    problems.append(f"{a} and {b} include each other")

    cmake = os.path.join(root, "src", "CMakeLists.txt")
    with open(cmake, encoding="utf-8") as fh:
        text = fh.read()
    for m in re.finditer(r"ds_module\((\w+)(.*?)\)\n", text, re.S):
        name, args = m.group(1), m.group(2)
        for group in re.finditer(r"\b(DEPS|IFACE)\b((?:\s+(?!LIBS|DEPS|IFACE|SOURCES)\w+)*)", args):
            for dep in group.group(2).split():
                if name in ALLOWED and dep not in ALLOWED[name]:
                    problems.append(f"src/CMakeLists.txt: {name} links {dep}, not in its allowed list")

    for p in problems:
        print("check-deps: " + p)
    if problems:
        return 1
    print(f"check-deps: {len(files)} files, module graph ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
