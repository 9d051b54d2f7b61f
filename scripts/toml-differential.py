#!/usr/bin/env python3
"""Differential check of the configuration loader's TOML syntax check (TOMLGuard) against Python's tomllib.

TOMLGuard must accept every text that tomllib (a strict TOML 1.0.0 parser, Python 3.11 and later) accepts, and
refuse every text that tomllib refuses for its syntax. tomllib also refuses what is well-formed but means nothing
(a key defined twice, a table redefined, February 30): those the guard leaves to the TOML library, which reports them
as errors, so "guard accepts, tomllib refuses for meaning" is not a disagreement.

    scripts/toml-differential.py                       the default inputs (below), with mutations
    scripts/toml-differential.py DIR_OR_FILE ...       those inputs instead (directories are read recursively)
    scripts/toml-differential.py --toml-test DIR       also the TOML 1.0.0 cases of a toml-test checkout
                                                       (github.com/toml-lang/toml-test: DIR holds files-toml-1.0.0)

Default inputs: fuzz-corpus/ConfigFuzz (the fuzzer's corpus, if present), Fuzz/seeds/ConfigFuzz,
config.toml.example, and Tests/**/*.toml. A UTF-8 byte-order mark, which the guard and the TOML library skip and tomllib refuses, is
removed before tomllib reads the text. With --mutations N (default 20), every input of at most 4 KB is also
mutated N times (one to three bytes deleted, duplicated or replaced by TOML-significant ones; a fixed seed), which is where
near-valid texts that tell the two apart come from.

It builds the guard with swiftc (scripts/toml-guard-check.swift + the guard's one source file) into a temporary
directory, prints each disagreement with both verdicts, and exits 1 if there is any.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

try:
    import tomllib
except ImportError:
    sys.exit("toml-differential: needs Python 3.11 or later (tomllib)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUARD_SOURCE = os.path.join(ROOT, "Sources/DeviceStatus/Config/TOMLGuard.swift")
DRIVER_SOURCE = os.path.join(ROOT, "scripts/toml-guard-check.swift")

# tomllib's messages for text that is well-formed TOML but not a valid document: the guard leaves these to the library.
SEMANTIC = ("Cannot overwrite a value", "Cannot declare", "Cannot mutate immutable namespace", "Cannot redefine namespace",
            "Duplicate inline table key",
            "Invalid date or datetime")
# Bytes a mutation inserts: the ones TOML's grammar turns on.
SIGNIFICANT = b"\"'[]{}=.,#\\ \t\n\r-+_:eETtZz0159xob\x7f\x00"


GUARD_AT = re.compile(r"^(\d+):(\d+): ")
TOMLLIB_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def line(message, pattern):
    """The line a verdict names, or 0."""
    match = pattern.search(message)
    return int(match.group(1)) if match else 0


def collect(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            for directory, _, names in os.walk(path):
                files += [os.path.join(directory, name) for name in sorted(names)]
        elif os.path.isfile(path):
            files.append(path)
    return files


def toml_test_files(root):
    listing = os.path.join(root, "files-toml-1.0.0")
    with open(listing) as handle:
        return [os.path.join(root, line.strip()) for line in handle
                if line.strip().endswith(".toml")]


def mutate(data, rng):
    if not data:
        return bytes([rng.choice(SIGNIFICANT)])
    index = rng.randrange(len(data))
    kind = rng.randrange(3)
    if kind == 0:
        return data[:index] + data[index + 1:]
    if kind == 1:
        return data[:index] + data[index:index + 1] + data[index:]
    return data[:index] + bytes([rng.choice(SIGNIFICANT)]) + data[index + 1:]


def tomllib_verdict(data):
    """('accept', '') or ('syntax' | 'semantic' | 'limit', message)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # A byte-order mark is not TOML, but the TOML library and the guard skip one: compare what follows it.
    text = text.removeprefix("\ufeff")
    try:
        tomllib.loads(text)
        return ("accept", "")
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        return ("semantic" if message.startswith(SEMANTIC) else "syntax", message)
    except RecursionError:
        return ("limit", "nesting deeper than Python's recursion limit")


def build_guard(directory):
    binary = os.path.join(directory, "toml-guard-check")
    subprocess.run(["swiftc", "-O", "-parse-as-library", "-swift-version", "6", DRIVER_SOURCE, GUARD_SOURCE,
                    "-o", binary], check=True)
    return binary


def guard_verdicts(binary, paths):
    verdicts = {}
    for start in range(0, len(paths), 500):
        output = subprocess.run([binary] + paths[start:start + 500], check=True, capture_output=True,
                                text=True).stdout
        for line in output.splitlines():
            path, _, verdict = line.partition("\t")
            verdicts[path] = verdict
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*")
    parser.add_argument("--toml-test", metavar="DIR")
    parser.add_argument("--mutations", type=int, default=20)
    parser.add_argument("--guard", metavar="BINARY", help="a built scripts/toml-guard-check (else swiftc builds it)")
    arguments = parser.parse_args()

    if arguments.inputs:
        files = collect(arguments.inputs)
    else:
        files = collect([os.path.join(ROOT, "fuzz-corpus/ConfigFuzz"), os.path.join(ROOT, "Fuzz/seeds/ConfigFuzz"),
                         os.path.join(ROOT, "config.toml.example")])
        files += [path for path in collect([os.path.join(ROOT, "Tests")]) if path.endswith(".toml")]
    if arguments.toml_test:
        files += toml_test_files(arguments.toml_test)

    with tempfile.TemporaryDirectory() as work:
        binary = arguments.guard or build_guard(work)
        rng = random.Random(12)
        cases = []  # (label, path to give the guard, bytes)
        for path in files:
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:  # a running fuzzer replaced it by a smaller input
                continue
            original = os.path.join(work, f"o{len(cases)}.toml")
            with open(original, "wb") as handle:
                handle.write(data)
            cases.append((path, original, data))
            if len(data) <= 4096:
                for number in range(arguments.mutations):
                    mutant = data
                    for _ in range(1 + number % 3):
                        mutant = mutate(mutant, rng)
                    mutated = os.path.join(work, f"m{len(cases)}.toml")
                    with open(mutated, "wb") as handle:
                        handle.write(mutant)
                    cases.append((f"{path} (mutation {number + 1})", mutated, mutant))
        guard = guard_verdicts(binary, [case[1] for case in cases])

        counts = {}
        disagreements = []
        for label, path, data in cases:
            oracle = tomllib_verdict(data)
            if oracle is None:
                counts["not UTF-8 (skipped)"] = counts.get("not UTF-8 (skipped)", 0) + 1
                continue
            kind, message = oracle
            accepted = guard[path] == "ok"
            if kind == "accept" and accepted:
                outcome = "both accept"
            elif kind == "syntax" and not accepted:
                outcome = "both refuse"
            elif kind == "semantic" and (accepted or line(guard[path], GUARD_AT) >= line(message, TOMLLIB_AT)):
                outcome = "semantic error: tomllib refuses, guard " + (
                    "accepts" if accepted else "refuses a syntax error on its line or after")
            elif kind == "limit":
                outcome = "too deep for tomllib"
            elif not accepted and "nest at most" in guard[path]:
                outcome = "nested deeper than the guard allows"
            else:
                outcome = "DISAGREE"
                disagreements.append((label, data, "accepts" if accepted else guard[path],
                                      "accepts" if kind == "accept" else message))
            counts[outcome] = counts.get(outcome, 0) + 1

    for label, data, guard_verdict, oracle_verdict in disagreements:
        print(f"DISAGREE {label}\n  text:    {data[:300]!r}\n  guard:   {guard_verdict}\n  tomllib: {oracle_verdict}")
    for outcome, count in sorted(counts.items()):
        print(f"{count:8d}  {outcome}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
