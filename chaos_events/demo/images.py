"""Builds every image the compose game day (docker-compose.locust.yml) needs, on this machine, without pulling one.

    python -m chaos_events.demo.images build [--registry] [--only harness,kafka,prometheus] [--force]
    python -m chaos_events.demo.images list           # each image, its tag, and whether it is up to date

Without `--registry`, a Debian bookworm base is made from scratch: debootstrap (minbase plus Python and a venv at
/opt/venv) from the machine's OWN apt mirror, read from /etc/apt/sources.list.d/*.sources or
/etc/apt/sources.list at run time, then `docker import`. Every other image builds on it with
`docker build --network host`, which installs Debian and PyPI packages. With `--registry`, the bases are pulled
instead (python:3.11-slim for the harness and Kafka, debian:bookworm-slim for Prometheus) and debootstrap is skipped.

Caching: each image carries the label `chaos-events.inputs`, a hash of everything that goes into it (recipe files,
build context, base image). An image whose label matches is not rebuilt; a changed input rebuilds it (Docker's
layer cache still spares the unchanged steps). The base's tag is its hash, chaos-events-base:<hash>.

Imports the standard library, chaos_events.errors and chaos_events.demo.kafka_dist (for the broker's jars); never
locust, gevent or docker (it runs the docker CLI).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable

from chaos_events.errors import ChaosError

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "images"
LABEL = "chaos-events.inputs"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_REPO = "chaos-events-base"
BASE_RECIPE = "1"
VENV = "/opt/venv"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
BASE_ENV = (f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
# Where a registry is reachable: the Python images start from python:3.11-slim, Prometheus from plain Debian.
REGISTRY_BASES = {"harness": "python:3.11-slim", "kafka": "python:3.11-slim", "prometheus": "debian:bookworm-slim"}
TAGS = {"harness": "chaos-events:local", "kafka": "chaos-events-kafka:local", "prometheus": "chaos-events-prometheus:local"}
IMAGES = tuple(TAGS)


class ImageError(ChaosError):
    """An image could not be built, or the machine lacks what building it needs."""


# -- the machine's apt mirror ----------------------------------------------------------------------------
def _deb822_stanzas(text: str) -> Iterable[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields:
            yield fields


def apt_sources(sources_d: Path = Path("/etc/apt/sources.list.d"),
                sources_list: Path = Path("/etc/apt/sources.list")) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled binary (`deb`) source of this machine, in file order (pure reading)."""
    found: list[tuple[str, list[str]]] = []
    for path in sorted(sources_d.glob("*.sources")) if sources_d.is_dir() else []:
        for fields in _deb822_stanzas(path.read_text(errors="replace")):
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                found.append((uri, fields.get("suites", "").split()))
    lists = ([sources_list] if sources_list.is_file() else []) + (sorted(sources_d.glob("*.list")) if sources_d.is_dir() else [])
    for path in lists:
        for line in path.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append((words[1], [words[2]]))
    return found


def debian_mirror(sources: list[tuple[str, list[str]]] | None = None) -> str:
    """The mirror that serves `bookworm` itself (not -security or -updates) among this machine's apt sources."""
    sources = apt_sources() if sources is None else sources
    for uri, suites in sources:
        if SUITE in suites and uri.startswith(("http://", "https://", "file:/")):
            return uri
    shown = "; ".join(f"{uri} {' '.join(s)}" for uri, s in sources) or "none"
    raise ImageError(f"no apt source of this machine serves Debian {SUITE} (needed for debootstrap); found: {shown}. "
                     f"Add one to /etc/apt/sources.list.d/, or build with --registry where images can be pulled")


# -- inputs and their hash -------------------------------------------------------------------------------
def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def context_files(context: Path) -> list[Path]:
    """The files `docker build` sends from `context`, honouring the simple patterns of its .dockerignore."""
    ignore = context / ".dockerignore"
    patterns = [l.strip().rstrip("/") for l in ignore.read_text().splitlines()
                if l.strip() and not l.startswith("#")] if ignore.exists() else []
    files = []
    for dirpath, dirnames, filenames in os.walk(context):
        rel_dir = Path(dirpath).relative_to(context).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = sorted(d for d in dirnames if not _ignored(rel_dir + d, patterns))
        files += [Path(dirpath) / f for f in sorted(filenames) if not _ignored(rel_dir + f, patterns)]
    return files


def _key(path: Path) -> str:
    """How a file is named in a hash: relative to the repository, or by its own name outside it (the jar cache)."""
    return path.relative_to(ROOT).as_posix() if ROOT in path.parents else f"external/{path.name}"


def inputs_hash(files: Iterable[Path], *extra: str) -> str:
    """sha256 over each file's name (see _key), executable bit and content, plus `extra` strings; 16 hex digits."""
    digest = hashlib.sha256()
    for value in extra:
        digest.update(f"extra:{value}\0".encode())
    for path in sorted(files, key=_key):
        digest.update(f"{_key(path)}\0{path.stat().st_mode & 0o111:o}\0".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


# -- docker ----------------------------------------------------------------------------------------------
def _run(argv: list[str], what: str, log: Callable[[str], None], out: IO | None = None, **kwargs) -> None:
    """Run a build step; its output goes to `out` (a file) when given, else to this process's own."""
    log("+ " + " ".join(argv))
    if out is not None:
        kwargs.setdefault("stdout", out)
        kwargs.setdefault("stderr", subprocess.STDOUT)
    try:
        proc = subprocess.run(argv, **kwargs)
    except FileNotFoundError:
        raise ImageError(f"{what}: {argv[0]} is not installed") from None
    if proc.returncode != 0:
        raise ImageError(f"{what}: `{' '.join(argv[:3])} ...` exited with code {proc.returncode}")


def image_label(tag: str) -> str | None:
    """The image's chaos-events.inputs label; None when there is no such image (or no label)."""
    proc = subprocess.run(["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', tag],
                          capture_output=True, text=True)
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value not in ("", "<no value>") else None


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


NO_CACHE = False  # `build --no-cache`: every step again, as on a machine that never built these images


def docker_build(context: Path, tag: str, digest: str, build_args: dict[str, str], log: Callable[[str], None],
                 out: IO | None = None) -> None:
    argv = ["docker", "build", "--network", "host", "--label", f"{LABEL}={digest}", "-t", tag]
    argv += ["--no-cache"] if NO_CACHE else []
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    _run(argv + [str(context)], f"building {tag}", log, out)


# -- the images ------------------------------------------------------------------------------------------
def base_tag() -> str:
    """chaos-events-base:<hash of the recipe>; bump BASE_RECIPE when build_base changes what it makes."""
    return f"{BASE_REPO}:{inputs_hash(local_ca_files(), BASE_RECIPE, SUITE, VENV, *BASE_PACKAGES, *BASE_ENV)}"


def local_ca_files() -> list[Path]:
    """The certificate authorities this machine adds to Debian's (an egress proxy's, a company's): the base
    trusts them too, or pip and apt inside the builds could not verify what this machine itself verifies."""
    return sorted(p for p in LOCAL_CA_DIR.rglob("*.crt") if p.is_file()) if LOCAL_CA_DIR.is_dir() else []


def build_base(log: Callable[[str], None] = print, force: bool = False, out: IO | None = None) -> str:
    """The Debian base (debootstrap, from this machine's apt mirror), imported as chaos-events-base:<hash>."""
    tag = base_tag()
    if image_exists(tag) and not force:
        log(f"{tag}: up to date")
        return tag
    if os.geteuid() != 0:
        raise ImageError("building the Debian base needs root (debootstrap and chroot); or build with --registry")
    if not shutil.which("debootstrap"):
        raise ImageError("building the Debian base needs debootstrap (apt-get install debootstrap); or build with --registry")
    mirror = debian_mirror()
    work = Path(tempfile.mkdtemp(prefix="chaos-base-"))
    rootfs = work / "rootfs"
    try:
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(rootfs), mirror],
             "debootstrap", log, out)
        _run(["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", VENV], "creating the venv", log, out)
        if local_ca_files():
            for cert in local_ca_files():
                dest = rootfs / cert.relative_to("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(cert, dest)
            _run(["chroot", str(rootfs), "update-ca-certificates"], "trusting this machine's CAs", log, out)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        changes = [arg for env in BASE_ENV for arg in ("--change", f"ENV {env}")] + ["--change", 'CMD ["/bin/bash"]']
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(["docker", "import", *changes, "-", tag], "docker import", log, out, stdin=tar.stdout)
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise ImageError(f"tar of {rootfs} exited with code {tar.returncode}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tag


@dataclass(frozen=True)
class Recipe:
    """What goes into one image: its tag, the context to build (made by `stage`) and its inputs' hash."""

    name: str
    tag: str
    files: tuple[Path, ...]               # every input file (what the hash covers)
    stage: Callable[[Path], Path] | None  # copies the inputs into a temporary context; None: build ROOT itself
    build_args: dict[str, str] = field(default_factory=dict)


def harness_recipe() -> Recipe:
    return Recipe("harness", TAGS["harness"], tuple(context_files(ROOT)), None)


def prometheus_recipe() -> Recipe:
    kit = ROOT / "dashboards" / "prometheus"
    files = (RECIPES / "prometheus" / "Dockerfile", RECIPES / "prometheus" / "entrypoint.sh", kit / "prometheus.yml", kit / "alerts.yml")

    def stage(work: Path) -> Path:
        (work / "prometheus").mkdir()
        shutil.copy2(files[0], work / "Dockerfile")
        shutil.copy2(files[1], work / "entrypoint.sh")
        for path in files[2:]:
            shutil.copy2(path, work / "prometheus" / path.name)
        return work

    return Recipe("prometheus", TAGS["prometheus"], files, stage)


def kafka_recipe() -> Recipe:
    from chaos_events.demo import kafka_dist  # the broker's jars: assembled from Maven Central by fetch-kafka

    version = kafka_dist.pinned_version()
    libs = kafka_dist.libs_dir(version)
    names = kafka_dist.cached_jars(libs)
    if names is None:
        raise ImageError(f"the Apache Kafka {version} jars are not (all) in {libs}: run `{kafka_dist.FETCH_COMMAND}` first")
    jars = tuple(libs / name for name in [*names, kafka_dist.MANIFEST])
    package = tuple(p for p in context_files(ROOT) if p.parts[len(ROOT.parts)] == "chaos_events")
    recipe_files = (RECIPES / "kafka" / "Dockerfile", ROOT / "pyproject.toml")

    def stage(work: Path) -> Path:
        shutil.copy2(recipe_files[0], work / "Dockerfile")
        shutil.copy2(recipe_files[1], work / "pyproject.toml")
        for path in package:
            dest = work / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        (work / "libs").mkdir()
        for jar in jars:
            try:
                os.link(jar, work / "libs" / jar.name)  # the jars are large: a hard link where the cache allows
            except OSError:
                shutil.copy2(jar, work / "libs" / jar.name)
        return work

    return Recipe("kafka", TAGS["kafka"], recipe_files + package + jars, stage, {"KAFKA_VERSION": version})


RECIPE_MAKERS: dict[str, Callable[[], Recipe]] = {"harness": harness_recipe, "kafka": kafka_recipe, "prometheus": prometheus_recipe}


def recipe_hash(recipe: Recipe, base: str) -> str:
    """The inputs label: the files, the build arguments, and the base by image id (a rebuilt base changes it)."""
    args = [f"{k}={v}" for k, v in sorted(recipe.build_args.items())]
    return inputs_hash(recipe.files, recipe.name, image_id(base) or base, *args)


def image_id(tag: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_image(recipe: Recipe, base: str, log: Callable[[str], None] = print, force: bool = False,
                out: IO | None = None) -> str:
    """Build one image unless an image with the same inputs label exists; returns its tag."""
    digest = recipe_hash(recipe, base)
    if image_label(recipe.tag) == digest and not force:
        log(f"{recipe.tag}: up to date (inputs {digest})")
        return recipe.tag
    build_args = {"BASE_IMAGE": base, **recipe.build_args}
    if recipe.stage is None:
        docker_build(ROOT, recipe.tag, digest, build_args, log, out)
        return recipe.tag
    with tempfile.TemporaryDirectory(prefix=f"chaos-{recipe.name}-") as work:
        context = recipe.stage(Path(work))
        docker_build(context, recipe.tag, digest, build_args, log, out)
    return recipe.tag


def build_all(names: Iterable[str] = IMAGES, registry: bool = False, force: bool = False,
              log: Callable[[str], None] = print, out: IO | None = None) -> dict[str, str]:
    """Build the named images (and the local base they need); returns name -> tag. The steps' own output goes to
    `out` when given (a log file), else to this process's stdout."""
    names = [name for name in IMAGES if name in set(names)]
    recipes = [RECIPE_MAKERS[name]() for name in names]  # fail on a missing input before the long steps
    local_base = None if registry else build_base(log, force, out)
    return {recipe.name: build_image(recipe, local_base or REGISTRY_BASES[recipe.name], log, force, out)
            for recipe in recipes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos_events.demo.images",
                                     description="Build the images of docker-compose.locust.yml locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build every image (or --only some); up-to-date ones are kept")
    build.add_argument("--only", default=",".join(IMAGES), help=f"comma-separated subset of: {', '.join(IMAGES)}")
    build.add_argument("--registry", action="store_true",
                       help="pull the bases (python:3.11-slim, debian:bookworm-slim) instead of making one with debootstrap")
    build.add_argument("--force", action="store_true", help="rebuild even when the inputs did not change")
    build.add_argument("--no-cache", action="store_true", help="with --force: without Docker's layer cache either")
    sub.add_parser("list", help="print each image's tag and whether it is up to date")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(IMAGES))
        if unknown:
            parser.error(f"--only: unknown image(s) {', '.join(unknown)}; expected some of: {', '.join(IMAGES)}")
        global NO_CACHE
        NO_CACHE = args.no_cache
        for name, tag in build_all(names, args.registry, args.force).items():
            print(f"{name}: {tag}")
        return 0
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _list() -> int:
    base = base_tag()
    print(f"base: {base} ({'present' if image_exists(base) else 'not built'})")
    for name, make in RECIPE_MAKERS.items():
        try:
            recipe = make()
        except ImageError as exc:
            print(f"{name}: {TAGS[name]} (cannot tell: {exc})")
            continue
        current = image_label(recipe.tag) == recipe_hash(recipe, base)
        print(f"{name}: {recipe.tag} ({'up to date' if current else 'needs a build'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
