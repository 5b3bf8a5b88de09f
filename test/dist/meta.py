#!/usr/bin/python3
"""META.json against the PGXN Meta Spec.

The schema, test/dist/pgxn-meta-1.schema.json, is written from the text of
the spec (https://pgxn.org/spec/, version 1.0.x).  Besides validating
META.json, the tests show that the schema refuses what the spec forbids and
takes what it allows, and that META.json agrees with the rest of the tree:
the extension's name and version, and the files it names.

Run: /usr/bin/python3 test/dist/meta.py  (Debian's python3-jsonschema).
"""
import copy
import json
import os
import re
import subprocess
import unittest

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(ROOT, "test", "dist", "pgxn-meta-1.schema.json")
META_PATH = os.path.join(ROOT, "META.json")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


SCHEMA = load(SCHEMA_PATH)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def problems(doc):
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(top)", e.message)
            for e in VALIDATOR.iter_errors(doc)]


def control_version():
    with open(os.path.join(ROOT, "reminder.control"), encoding="utf-8") as f:
        m = re.search(r"^default_version\s*=\s*'([^']+)'", f.read(), re.M)
    return m.group(1)


def tracked(path):
    """Is path part of the distribution (git archive of the tree)?"""
    if os.path.isdir(os.path.join(ROOT, ".git")) or os.path.isfile(os.path.join(ROOT, ".git")):
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch", path],
                             capture_output=True)
        return out.returncode == 0
    return os.path.exists(os.path.join(ROOT, path))


class Schema(unittest.TestCase):
    def test_schema_is_a_valid_json_schema(self):
        jsonschema.Draft202012Validator.check_schema(SCHEMA)


class MetaJson(unittest.TestCase):
    def setUp(self):
        self.meta = load(META_PATH)

    def test_valid_against_the_spec(self):
        self.assertEqual(problems(self.meta), [])

    def test_name_is_the_extension(self):
        self.assertEqual(self.meta["name"], "reminder")
        self.assertIn("reminder", self.meta["provides"])
        with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
            self.assertRegex(f.read(), r"(?m)^EXTENSION\s*=\s*reminder\s*$")

    def test_versions_agree_with_the_control_file(self):
        v = control_version()
        self.assertEqual(self.meta["version"], v, "META.json version vs reminder.control default_version")
        self.assertEqual(self.meta["provides"]["reminder"]["version"], v,
                         "provides.reminder.version vs reminder.control default_version")

    def test_named_files_are_in_the_distribution(self):
        for ext, p in self.meta["provides"].items():
            for key in ("file", "docfile"):
                if key in p:
                    self.assertTrue(tracked(p[key]), "provides.%s.%s: %s is not in the tree" % (ext, key, p[key]))
        for d in self.meta.get("no_index", {}).get("directory", []):
            self.assertTrue(os.path.isdir(os.path.join(ROOT, d)), "no_index directory %s" % d)

    def test_debian_changelog_has_the_same_upstream_version(self):
        path = os.path.join(ROOT, "debian", "changelog")
        if not os.path.exists(path):
            self.skipTest("no debian/changelog")
        with open(path, encoding="utf-8") as f:
            m = re.match(r"^\S+ \(([^)-]+)(-[^)]*)?\) ", f.readline())
        self.assertIsNotNone(m, "first line of debian/changelog")
        self.assertEqual(m.group(1), self.meta["version"])


class Distribution(unittest.TestCase):
    """make dist: the zip PGXN takes, with META.json at the top of its folder."""

    def test_make_dist(self):
        if not os.path.exists(os.path.join(ROOT, ".git")):
            self.skipTest("not a git checkout")
        import tempfile
        import zipfile
        meta = load(META_PATH)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["make", "-s", "-C", ROOT, "dist", "DIST_DIR=" + tmp], check=True,
                           stdout=subprocess.DEVNULL)
            prefix = "%s-%s/" % (meta["name"], meta["version"])
            with zipfile.ZipFile(os.path.join(tmp, prefix[:-1] + ".zip")) as z:
                names = set(z.namelist())
                self.assertTrue(all(n.startswith(prefix) for n in names), "one top folder " + prefix)
                self.assertTrue(prefix + "META.json" in names, "META.json at the top (committed?)")
                self.assertEqual(problems(json.loads(z.read(prefix + "META.json"))), [])
                for must in [p["file"] for p in meta["provides"].values()] + \
                        ["Makefile", "reminder.control", "sql/reminder--0.1.0.sql"]:
                    self.assertTrue(prefix + must in names, must + " in the zip")


# What the spec forbids, each applied to the real META.json: every one must
# make it invalid, so that the check above can fail.
def _without(key):
    return lambda m: m.pop(key)


def _set(path, value):
    def apply(m):
        d = m
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return apply


INVALID = {
    "no name": _without("name"),
    "no abstract": _without("abstract"),
    "no version": _without("version"),
    "no maintainer": _without("maintainer"),
    "no license": _without("license"),
    "no provides": _without("provides"),
    "no meta-spec": _without("meta-spec"),
    "name of one character": _set(["name"], "r"),
    "name with a space": _set(["name"], "re minder"),
    "name with a slash": _set(["name"], "re/minder"),
    "empty abstract": _set(["abstract"], ""),
    "version not semver (two parts)": _set(["version"], "0.2"),
    "version with a leading zero": _set(["version"], "0.02.0"),
    "version as a number": _set(["version"], 2),
    "empty maintainer list": _set(["maintainer"], []),
    "unknown license string": _set(["license"], "PostgreSQL License"),
    "unknown license string in a list": _set(["license"], ["postgresql", "wtfpl"]),
    "license map whose value is no URI": _set(["license"], {"PostgreSQL": "see LICENSE"}),
    "empty provides": _set(["provides"], {}),
    "provides entry without file": lambda m: m["provides"]["reminder"].pop("file"),
    "provides entry without version": lambda m: m["provides"]["reminder"].pop("version"),
    "provides entry with an unknown key": _set(["provides", "reminder", "control"], "reminder.control"),
    "provides file as an absolute path": _set(["provides", "reminder", "file"], "/usr/share/reminder.control"),
    "provides file with backslashes": _set(["provides", "reminder", "file"], "sql\\reminder.sql"),
    "meta-spec without version": lambda m: m["meta-spec"].pop("version"),
    "meta-spec version 2": _set(["meta-spec", "version"], "2.0.0"),
    "unknown top-level key": _set(["homepage"], "https://example.com/"),
    "custom key without x_": _set(["custom"], True),
    "tag with a slash": _set(["tags"], ["email/sms"]),
    "tag of 256 characters": _set(["tags"], ["t" * 256]),
    "release_status not in the list": _set(["release_status"], "beta"),
    "unknown prereq phase": _set(["prereqs", "install"], {"requires": {"plpgsql": 0}}),
    "unknown prereq relationship": _set(["prereqs", "runtime", "needs"], {"plpgsql": 0}),
    "version range that is no range": _set(["prereqs", "runtime", "requires", "PostgreSQL"], "fifteen"),
    "version range with a bad operator": _set(["prereqs", "runtime", "requires", "PostgreSQL"], "=> 15.0.0"),
    "version range 1 (only 0 may be a number)": _set(["prereqs", "runtime", "requires", "plpgsql"], 1),
    "no_index with an unknown key": _set(["no_index", "files"], ["x"]),
    "resources with an unknown key": _set(["resources"], {"twitter": "https://example.com/"}),
    "repository type in capitals": _set(["resources"], {"repository": {"url": "https://example.com/r.git", "type": "Git"}}),
}

# What the spec allows beyond what META.json uses: each must stay valid.
VALID = {
    "maintainer as one string": _set(["maintainer"], "Ada <ada@example.com>"),
    "license as a list": _set(["license"], ["postgresql", "mit"]),
    "license as a map of URIs": _set(["license"], {"PostgreSQL": "https://www.postgresql.org/about/licence"}),
    "custom keys with x_ and X_": lambda m: m.update({"x_ci": {"anything": [1]}, "X_note": "ok"}),
    "custom key inside provides": _set(["provides", "reminder", "x_kind"], "worker"),
    "version with a pre-release": _set(["version"], "1.0.0-beta.2"),
    "version ranges with operators": _set(["prereqs", "runtime", "requires", "PostgreSQL"], ">= 15.0.0, != 15.1.0, < 16.0.0"),
    "version range 0 as a string": _set(["prereqs", "build"], {"requires": {"plpgsql": "0"}}),
    "all phases and relationships": _set(["prereqs"], {
        p: {r: {"pgtap": 0} for r in ("requires", "recommends", "suggests", "conflicts")}
        for p in ("configure", "build", "test", "runtime", "develop")}),
    "resources in full": _set(["resources"], {
        "homepage": "https://example.com/reminder",
        "bugtracker": {"web": "https://example.com/reminder/issues", "mailto": "bugs@example.com"},
        "repository": {"url": "git://example.com/reminder.git", "web": "https://example.com/reminder", "type": "git"},
        "x_chat": "https://example.com/chat"}),
    "no_index files and a directory as a string": _set(["no_index"], {"file": ["src/x.sql"], "directory": "bench"}),
    "meta-spec 1.0.2 without url": _set(["meta-spec"], {"version": "1.0.2"}),
}


class SchemaFollowsTheSpec(unittest.TestCase):
    def setUp(self):
        self.meta = load(META_PATH)

    def test_refuses_what_the_spec_forbids(self):
        for what, change in INVALID.items():
            with self.subTest(what):
                m = copy.deepcopy(self.meta)
                change(m)
                self.assertNotEqual(problems(m), [], "accepted: " + what)

    def test_takes_what_the_spec_allows(self):
        for what, change in VALID.items():
            with self.subTest(what):
                m = copy.deepcopy(self.meta)
                change(m)
                self.assertEqual(problems(m), [], "refused: " + what)


if __name__ == "__main__":
    unittest.main(verbosity=2)
