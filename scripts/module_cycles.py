"""Prints which top-level modules of src/ import which (`crate::<module>` outside comments),
and every import cycle between them; exits 1 when there is one.

Test-only code is left out, as a dev-dependency would be: files named tests.rs or testkit.rs,
and a trailing `#[cfg(test)] mod tests { ... }`.

Usage: python3 scripts/module_cycles.py [SRC_DIR]
"""

import os
import re
import sys


def modules(root):
    """The crate's top-level modules, as lib.rs declares them (`fuzzing` is a test harness)."""
    lib = open(os.path.join(root, "lib.rs"), encoding="utf-8").read()
    return [m for m in re.findall(r"^pub mod (\w+);", lib, re.M) if m != "fuzzing"]


def top_module(root, path):
    first = os.path.relpath(path, root).split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def edges(root):
    MODULES = modules(root)
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or f in ("tests.rs", "testkit.rs"):
                continue
            path = os.path.join(d, f)
            m = top_module(root, path)
            if m not in MODULES:
                continue
            text = open(path, encoding="utf-8").read()
            cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod tests", text)
            if cut:
                text = text[: cut.start()]
            text = re.sub(r"//[^\n]*", "", text)
            for t in set(re.findall(r"crate::(\w+)", text)):
                if t in MODULES and t != m:
                    out.setdefault(m, {}).setdefault(t, set()).add(os.path.relpath(path, root))
    return out


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "src"
    graph = edges(root)
    for m in sorted(graph):
        print(m, "->", ", ".join(sorted(graph[m])))
    found = cycles(graph)
    for comp in found:
        print("CYCLE:", " ".join(comp))
        for a in comp:
            for b in comp:
                if b in graph.get(a, {}):
                    print("  ", a, "->", b, sorted(graph[a][b]))
    if not found:
        print("no cycle between top-level modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
