#!/usr/bin/env python3
"""Checks every #include of the library against the declared area graph.

Usage: check_layering.py SOURCE_DIR LAYERING_TXT

LAYERING_TXT is written by CMakeLists.txt, one line per area: "area:dep,dep".
An area may include its own headers and those of the areas it depends on,
directly or through them. Every folder under include/cakes/ and src/ must be a
declared area. Prints each violation as FILE:LINE and exits 1 if there is one.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def read_graph(path):
    graph = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            area, _, deps = line.partition(":")
            graph[area] = [d for d in deps.split(",") if d]
    return graph


def closure(graph, area):
    seen, stack = set(), [area]
    while stack:
        a = stack.pop()
        if a in seen:
            continue
        seen.add(a)
        stack.extend(graph.get(a, []))
    return seen


def included_area(root, source, target):
    """The area an include names ("cakes/<area>/..." or a relative path that
    lands in include/cakes/<area> or src/<area>), or None."""
    if target.startswith("cakes/"):
        parts = target.split("/")
        return parts[1] if len(parts) > 2 else None
    resolved = os.path.normpath(os.path.join(os.path.dirname(source), target))
    for base in ("include/cakes", "src"):
        rel = os.path.relpath(resolved, os.path.join(root, base))
        if not rel.startswith("..") and os.sep in rel and os.path.exists(resolved):
            return rel.split(os.sep)[0]
    return None


def main():
    root, layering = sys.argv[1], sys.argv[2]
    graph = read_graph(layering)
    problems = []
    for base in ("include/cakes", "src"):
        top = os.path.join(root, base)
        for area in sorted(os.listdir(top)):
            folder = os.path.join(top, area)
            if not os.path.isdir(folder):
                continue
            if area not in graph:
                problems.append(f"{base}/{area}: not a declared area (CMakeLists.txt cakes_area)")
                continue
            allowed = closure(graph, area)
            for dirpath, _, files in os.walk(folder):
                for name in sorted(files):
                    if not name.endswith((".h", ".cpp", ".cu", ".hpp")):
                        continue
                    path = os.path.join(dirpath, name)
                    with open(path, errors="replace") as f:
                        for number, line in enumerate(f, 1):
                            m = INCLUDE.match(line)
                            if not m:
                                continue
                            other = included_area(root, path, m.group(1))
                            if other is not None and other not in allowed:
                                problems.append(
                                    f"{os.path.relpath(path, root)}:{number}: area '{area}' "
                                    f"includes '{m.group(1)}' of area '{other}', which it "
                                    f"does not depend on (allowed: {', '.join(sorted(allowed))})")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"layering: {len(graph)} areas, every include follows the declared graph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
