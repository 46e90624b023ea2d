#!/usr/bin/env python3
"""Checks the deployment files under deploy/ against each other and against
the gateway's configuration schema.

    python3 deploy/check.py [--no-pyyaml]

Kubernetes (deploy/kubernetes/): every manifest parses and names its
apiVersion, kind and metadata.name; the Deployment's probes ask /readyz and
/healthz on the container port the data-plane Service targets; Service,
PodDisruptionBudget and HorizontalPodAutoscaler select the Deployment's
pods; the ConfigMap's switchyard.toml parses and uses only keys the gateway
knows (RawConfig and its tables deny unknown fields), and agrees with the
Deployment (ports, spool on a writable volume, shared storage and Redis for
several replicas, stop budget), the Secret example and the kustomization.

systemd (deploy/systemd/): the unit passes `systemd-analyze verify` (with
ExecStart pointed at a stand-in, since the real binary is usually not
installed where this runs), its stop timeout covers the shutdown grace of
the example config, and `systemd-analyze security --offline=yes` is shown.

Container (deploy/Containerfile): the ports it exposes are the defaults,
its user is numeric and not root, and matches the Deployment's runAsUser.

Needs Python 3.11 (tomllib) or the tomli package. Uses PyYAML when it can
be imported; otherwise a small reader for the YAML these files are written
in (block mappings and sequences, scalars, flow lists of scalars, literal
blocks). With PyYAML present both readers run and must agree, so the files
stay checkable without it. When a `switchyard` binary is found
($SWITCHYARD_BIN, target/ or $CARGO_TARGET_DIR), `switchyard check-config`
validates both example configs too.

Exits 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
K8S = HERE / "kubernetes"
SYSTEMD = HERE / "systemd"
CONTAINERFILE = HERE / "Containerfile"
CONFIG_RS = ROOT / "crates" / "switchyard" / "src" / "config.rs"
CONFIG_DIR = ROOT / "crates" / "switchyard" / "src" / "config"
PRESETS = ROOT / "crates" / "switchyard" / "data" / "presets.toml"

# The Secret example is applied by hand, never by `kubectl apply -k`.
SECRET_EXAMPLE = "secret.example.yaml"

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

if "--no-pyyaml" in sys.argv[1:]:
    yaml = None
else:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        yaml = None

# Environment variables that override switchyard.toml (config.rs validate()).
ENV_OVERRIDES = {
    "SWITCHYARD_LISTEN": ("server", "listen"),
    "SWITCHYARD_ADMIN_LISTEN": ("server", "admin_listen"),
    "SWITCHYARD_STORAGE_URL": ("storage", "url"),
    "SWITCHYARD_REDIS_URL": ("redis", "url"),
}
DEFAULTS = {
    "listen": "127.0.0.1:8080",
    "admin_listen": "127.0.0.1:8081",
    "storage": "sqlite://switchyard.db",
    "shutdown_grace": 10.0,
    "admin_token_env": "SWITCHYARD_ADMIN_TOKEN",
}

# The configuration schema as of this file's writing: table -> key -> kind,
# where a kind is "leaf", ("table", NAME), ("list", KIND) or ("map", KIND).
# Used only when crates/switchyard/src/config.rs is not next to deploy/;
# otherwise the schema is read from the source itself.
SNAPSHOT = {
    "RawConfig": {
        "server": ("table", "RawServer"),
        "storage": ("table", "RawStorage"),
        "redis": ("table", "RawRedis"),
        "auth": ("table", "RawAuth"),
        "providers": ("list", ("table", "RawProvider")),
        "routes": ("list", ("table", "RawRoute")),
        "cache": ("table", "RawCache"),
        "streams": ("table", "RawStreams"),
        "logs": ("table", "RawLogs"),
        "pricing": ("map", ("table", "RawPrice")),
        "circuit": ("table", "RawCircuit"),
        "limits": ("table", "RawLimits"),
        "responses": ("table", "RawResponses"),
        "tools": ("list", ("table", "RawTool")),
        "mcp_servers": ("list", ("table", "RawMcpServer")),
        "approvals": ("table", "RawApprovals"),
    },
    "RawServer": dict.fromkeys(
        "listen admin_listen max_body_bytes header_read_timeout_ms request_timeout_ms "
        "shutdown_grace_ms max_concurrent queue_timeout_ms write_timeout_ms log_format".split(),
        "leaf",
    ),
    "RawStorage": {"url": "leaf"},
    "RawRedis": dict.fromkeys("url cluster on_unavailable".split(), "leaf"),
    "RawAuth": {"require_keys": "leaf", "admin_token_env": "leaf"},
    "RawProvider": dict.fromkeys(
        "name kind preset base_url api_key_env jurisdiction timeout_ms first_chunk_timeout_ms "
        "models default_max_tokens responses propagate_trace api_version entra_token_env region "
        "aws_access_key_id_env aws_secret_access_key_env aws_session_token_env bearer_token_env "
        "project location credentials_file_env".split(),
        "leaf",
    ) | {"entra": ("table", "RawEntra")},
    "RawEntra": dict.fromkeys(
        "tenant_id_env client_id_env client_secret_env token_url scope".split(), "leaf"
    ),
    "RawRoute": dict.fromkeys("name strategy targets max_attempts cache_fallback".split(), "leaf"),
    "RawCache": dict.fromkeys("default_ttl_s max_entries max_bytes".split(), "leaf"),
    "RawStreams": dict.fromkeys(
        "continue_on_disconnect max_detached max_buffer_bytes retain_s delivered_retain_s "
        "max_retained_bytes".split(),
        "leaf",
    ),
    "RawLogs": dict.fromkeys(
        "mode retain_days body_retain_days spool_dir spool_max_bytes on_spool_full backlog_bytes".split(), "leaf"
    ),
    "RawPrice": dict.fromkeys(
        "input_per_mtok_usd output_per_mtok_usd cached_input_per_mtok_usd cache_write_per_mtok_usd "
        "max_output_tokens web_search_per_1k_usd".split(),
        "leaf",
    ),
    "RawCircuit": dict.fromkeys("failures cooldown_ms max_cooldown_ms".split(), "leaf"),
    "RawLimits": {"max_output_tokens": "leaf"},
    "RawResponses": dict.fromkeys("store retain_days drop_unsupported_tools".split(), "leaf"),
    "RawTool": {
        **dict.fromkeys(
            "name base_url graphql reads writes approval approval_timeout_s timeout_ms "
            "jurisdiction".split(),
            "leaf",
        ),
        "auth": ("table", "RawToolAuth"),
    },
    "RawToolAuth": dict.fromkeys("header value_env prefix".split(), "leaf"),
    "RawMcpServer": {
        **dict.fromkeys(
            "name url reads writes client_approval list_ttl_s approval approval_timeout_s "
            "timeout_ms jurisdiction".split(),
            "leaf",
        ),
        "auth": ("table", "RawToolAuth"),
    },
    "RawApprovals": {"timeout_s": "leaf"},
}


# ------------------------------------------------------------------ report


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def ok(self, msg: str) -> None:
        print(f"ok    {msg}")

    def note(self, msg: str) -> None:
        print(f"note  {msg}")

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        print(f"FAIL  {msg}")

    def check(self, cond: bool, ok_msg: str, fail_msg: str) -> bool:
        if cond:
            self.ok(ok_msg)
        else:
            self.fail(fail_msg)
        return cond


R = Report()


# ------------------------------------------------------- a little YAML


class MiniYamlError(Exception):
    pass


def _strip_comment(text: str) -> str:
    """Drops a trailing `# comment` that is outside quotes (a quote opens a
    string only where a scalar may start: `don't` is plain text)."""
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'" and (i == 0 or text[i - 1] in " [,{:"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, cur, quote = [], "", None
    for c in text:
        if quote:
            cur += c
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
            cur += c
        elif c == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def _scalar(text: str):
    t = text.strip()
    if t.startswith('"'):
        if not t.endswith('"') or len(t) < 2:
            raise MiniYamlError(f"unterminated string: {t}")
        return json.loads(t)
    if t.startswith("'"):
        if not t.endswith("'") or len(t) < 2:
            raise MiniYamlError(f"unterminated string: {t}")
        return t[1:-1].replace("''", "'")
    if t.startswith("["):
        if not t.endswith("]"):
            raise MiniYamlError(f"flow sequences must fit on one line: {t}")
        inner = t[1:-1].strip()
        if not inner:
            return []
        if "[" in inner or "{" in inner:
            raise MiniYamlError(f"nested flow collections are not supported: {t}")
        return [_scalar(p) for p in _split_outside_quotes(inner, ",")]
    if t.startswith("{"):
        if t == "{}":
            return {}
        raise MiniYamlError(f"flow mappings are not supported (use a block mapping): {t}")
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    if t in ("true", "True", "TRUE"):
        return True
    if t in ("false", "False", "FALSE"):
        return False
    if t in ("yes", "no", "on", "off", "Yes", "No", "On", "Off"):
        raise MiniYamlError(f"quote {t!r}: YAML 1.1 readers take it for a boolean")
    if re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", t):
        return int(t)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+][0-9]+)?", t):
        return float(t)
    if t[0] in "&*!|>%@`":
        raise MiniYamlError(f"unsupported YAML syntax: {t}")
    return t


class MiniYaml:
    """Reads one YAML document written in a plain subset of the language."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.i = 0
        # A "- key: value" line is read as a mapping starting after "- ".
        self.virtual: tuple[int, int, str] | None = None

    def _peek(self):
        while self.i < len(self.lines):
            if self.virtual and self.virtual[0] == self.i:
                return self.virtual[1], self.virtual[2]
            raw = self.lines[self.i]
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise MiniYamlError(f"line {self.i + 1}: tab in indentation")
            text = _strip_comment(raw.strip())
            if text:
                return len(raw) - len(raw.lstrip(" ")), text
            self.i += 1
        return None

    def _advance(self) -> None:
        self.virtual = None
        self.i += 1

    def parse(self):
        first = self._peek()
        if first is None:
            return None
        value = self._block(first[0])
        if self._peek() is not None:
            raise MiniYamlError(f"line {self.i + 1}: unexpected indentation")
        return value

    def _block(self, indent: int):
        ind, text = self._peek()
        if ind != indent:
            raise MiniYamlError(f"line {self.i + 1}: unexpected indentation")
        if text == "-" or text.startswith("- "):
            return self._sequence(indent)
        if _key_split(text) is None:
            self._advance()
            return _scalar(text)
        return self._mapping(indent)

    def _sequence(self, indent: int) -> list:
        items = []
        while (nxt := self._peek()) is not None:
            ind, text = nxt
            if ind != indent or not (text == "-" or text.startswith("- ")):
                if ind > indent:
                    raise MiniYamlError(f"line {self.i + 1}: unexpected indentation")
                break
            rest = text[1:].lstrip(" ")
            if not rest:
                self._advance()
                nxt = self._peek()
                items.append(self._block(nxt[0]) if nxt and nxt[0] > indent else None)
                continue
            child = indent + (len(text) - len(rest))
            if _key_split(rest) is not None or rest.startswith("- "):
                self.virtual = (self.i, child, rest)
                items.append(self._block(child))
            else:
                self._advance()
                items.append(_scalar(rest))
        return items

    def _mapping(self, indent: int) -> dict:
        out: dict = {}
        while (nxt := self._peek()) is not None:
            ind, text = nxt
            if ind < indent:
                break
            if ind > indent:
                raise MiniYamlError(f"line {self.i + 1}: unexpected indentation")
            if text == "-" or text.startswith("- "):
                break
            split = _key_split(text)
            if split is None:
                raise MiniYamlError(f"line {self.i + 1}: expected `key: value`, got {text!r}")
            key, rest = split
            if key in out:
                raise MiniYamlError(f"line {self.i + 1}: duplicate key {key!r}")
            line_no = self.i
            self._advance()
            if rest in ("|", "|-", "|+"):
                out[key] = self._literal(indent, rest, line_no)
            elif rest.startswith((">", "|")):
                raise MiniYamlError(f"line {line_no + 1}: only `|` block scalars are supported")
            elif rest:
                out[key] = _scalar(rest)
            else:
                nxt = self._peek()
                if nxt is None:
                    out[key] = None
                elif nxt[0] > indent:
                    out[key] = self._block(nxt[0])
                elif nxt[0] == indent and (nxt[1] == "-" or nxt[1].startswith("- ")):
                    out[key] = self._sequence(indent)
                else:
                    out[key] = None
        return out

    def _literal(self, indent: int, style: str, line_no: int) -> str:
        body: list[str] = []
        block_indent = None
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            if raw.strip():
                ind = len(raw) - len(raw.lstrip(" "))
                if block_indent is None:
                    if ind <= indent:
                        break
                    block_indent = ind
                elif ind < block_indent:
                    break
                body.append(raw[block_indent:])
            else:
                body.append("")
            self.i += 1
        if block_indent is None:
            raise MiniYamlError(f"line {line_no + 1}: empty literal block")
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        text = "\n".join(body)
        if style == "|":
            return text + "\n"
        if style == "|-":
            return text
        return text + "\n" * (trailing + 1)


def _key_split(text: str):
    """`key: value` -> (key, value); None when the line is not a pair."""
    if text == "-" or text.startswith("- ") or text[0] in "[{":
        return None
    if text[0] in "\"'":
        end = text.find(text[0], 1)
        after = text[end + 1 :] if end > 0 else ""
        if after == ":" or after.startswith(": "):
            return text[1:end], after[1:].strip()
        return None
    m = re.search(r":(\s|$)", text)
    if not m or not text[: m.start()].strip():
        return None
    return text[: m.start()].strip(), text[m.end() :].strip()


def mini_load_all(text: str) -> list:
    docs, cur = [], []
    for line in text.split("\n"):
        if line.rstrip() == "---":
            docs.append("\n".join(cur))
            cur = []
        elif line.startswith("..."):
            raise MiniYamlError("document end markers are not supported")
        else:
            cur.append(line)
    docs.append("\n".join(cur))
    # Empty documents (around a leading or trailing `---`) are skipped, as
    # load_yaml does with PyYAML's.
    return [d for d in (MiniYaml(doc).parse() for doc in docs) if d is not None]


def load_yaml(path: Path) -> list | None:
    text = path.read_text(encoding="utf-8")
    try:
        mini = mini_load_all(text)
    except MiniYamlError as e:
        mini = e
    if yaml is not None:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as e:
            R.fail(f"{rel(path)}: not valid YAML: {e}")
            return None
        if isinstance(mini, MiniYamlError):
            R.fail(
                f"{rel(path)}: the fallback reader (used where PyYAML is missing) cannot read "
                f"it: {mini}; keep to block mappings/sequences, scalars and `|` blocks"
            )
        elif mini != docs:
            R.fail(f"{rel(path)}: the fallback reader reads it differently from PyYAML")
        return docs
    if isinstance(mini, MiniYamlError):
        R.fail(f"{rel(path)}: cannot read it without PyYAML: {mini}")
        return None
    return mini


# ------------------------------------------------------------ helpers


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def dig(obj, *keys, default=None):
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


def parse_duration(value) -> float | None:
    """A config duration in seconds: an integer of milliseconds, or text such
    as "10s", "1m30s", "250ms" (config.rs parse_duration)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value / 1000.0
    if not isinstance(value, str) or not value.strip():
        return None
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total, rest = 0.0, value.strip()
    while rest:
        m = re.match(r"([0-9.]+)([a-z]+)", rest)
        if not m or m.group(2) not in units:
            return None
        total += float(m.group(1)) * units[m.group(2)]
        rest = rest[m.end() :]
    return total


def parse_systemd_seconds(value: str) -> float | None:
    units = {
        "us": 1e-6, "ms": 0.001, "s": 1, "sec": 1, "second": 1, "seconds": 1,
        "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
        "hour": 3600, "hours": 3600,
    }  # fmt: skip
    v = value.strip()
    if v in ("infinity", ""):
        return None
    if re.fullmatch(r"[0-9.]+", v):
        return float(v)
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)\s*([a-z]+)", v):
        if unit not in units:
            return None
        total += float(num) * units[unit]
    return total


def parse_quantity(value) -> float | None:
    """A Kubernetes quantity (512Mi, 1G, 268435456) in bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?", value.strip())
    if not m:
        return None
    mult = {
        None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    }  # fmt: skip
    return float(m.group(1)) * mult[m.group(2)]


def addr_port(addr: str) -> int | None:
    m = re.fullmatch(r"(?:\[[^\]]*\]|[^:]+):([0-9]+)", addr or "")
    return int(m.group(1)) if m else None


def addr_loopback(addr: str) -> bool:
    host = (addr or "").rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "localhost")


def effective(config: dict, env: dict, table: str, key: str, default=None):
    """A setting as the gateway sees it: the environment variable wins."""
    for var, (t, k) in ENV_OVERRIDES.items():
        if (t, k) == (table, key) and env.get(var):
            return env[var]
    return dig(config, table, key, default=default)


# ------------------------------------------------------ config schema


def _resolve(ty: str, structs: dict):
    ty = re.sub(r"\b(?:tools|super|crate::config)::", "", ty.strip())
    m = re.fullmatch(r"Option<(.*)>", ty)
    if m:
        return _resolve(m.group(1), structs)
    # Collections of plain values are leaves too: only keys are checked here
    # (value types are `switchyard check-config`'s business).
    m = re.fullmatch(r"Vec<(.*)>", ty)
    if m:
        inner = _resolve(m.group(1), structs)
        return "leaf" if inner == "leaf" else ("list", inner)
    m = re.fullmatch(r"(?:BTreeMap|HashMap)<\s*String\s*,(.*)>", ty)
    if m:
        inner = _resolve(m.group(1), structs)
        return "leaf" if inner == "leaf" else ("map", inner)
    if ty in structs:
        return ("table", ty)
    return "leaf"


def schema_from_source() -> dict | None:
    if not CONFIG_RS.is_file():
        return None
    text = CONFIG_RS.read_text(encoding="utf-8")
    for part in sorted(CONFIG_DIR.glob("*.rs")):
        text += "\n" + part.read_text(encoding="utf-8")
    raw_fields: dict[str, list[tuple[str, str]]] = {}
    for m in re.finditer(r"^pub struct (Raw\w+)\s*\{(.*?)^\}", text, re.S | re.M):
        body = m.group(2)
        if re.search(r"serde\((?:[^)]*\b)?(rename|alias|flatten)\b", body):
            R.note(f"config.rs: {m.group(1)} renames or flattens fields; "
                   "check.py reads the names as written")
        raw_fields[m.group(1)] = re.findall(r"^\s*pub (\w+):\s*(.+?),\s*$", body, re.M)
    if "RawConfig" not in raw_fields:
        return None
    every = {
        name: {f: _resolve(t, raw_fields) for f, t in fields}
        for name, fields in raw_fields.items()
    }
    # Only the tables a config file can reach from its top level.
    reachable, todo = {}, ["RawConfig"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable[name] = every[name]
        for kind in every[name].values():
            while kind != "leaf":
                if kind[0] == "table":
                    todo.append(kind[1])
                    break
                kind = kind[1]
    return reachable


def check_schema(value, kind, path: str, schema: dict, errors: list[str]) -> None:
    if kind == "leaf":
        return
    tag, inner = kind
    if tag == "list":
        if not isinstance(value, list):
            errors.append(f"`{path}` should be an array (e.g. [[{path}]])")
            return
        for i, item in enumerate(value):
            check_schema(item, inner, f"{path}[{i}]", schema, errors)
    elif tag == "map":
        if not isinstance(value, dict):
            errors.append(f"`{path}` should be a table")
            return
        for k, v in value.items():
            check_schema(v, inner, f'{path}."{k}"', schema, errors)
    elif tag == "table":
        if not isinstance(value, dict):
            errors.append(f"`{path or 'top level'}` should be a table")
            return
        allowed = schema.get(inner, {})
        for k, v in value.items():
            where = f"{path}.{k}" if path else k
            if k not in allowed:
                known = ", ".join(sorted(allowed))
                errors.append(f"unknown key `{where}` (the gateway refuses it; known: {known})")
            else:
                check_schema(v, allowed[k], where, schema, errors)


def load_schema() -> dict:
    schema = schema_from_source()
    if schema is None:
        R.note("crates/switchyard/src/config.rs not found: using check.py's copy of the schema")
        return SNAPSHOT
    if schema != SNAPSHOT:
        R.note("check.py's copy of the schema (SNAPSHOT) differs from config.rs; config.rs wins")
    R.ok(f"schema read from {rel(CONFIG_RS)} ({len(schema)} Raw* structs)")
    return schema


def validate_toml(text: str, where: str, schema: dict) -> dict | None:
    if tomllib is None:
        R.note(f"{where}: not parsed (needs Python 3.11+ or tomli)")
        return None
    try:
        config = tomllib.loads(text)
    except Exception as e:  # tomllib.TOMLDecodeError
        R.fail(f"{where}: not valid TOML: {e}")
        return None
    errors: list[str] = []
    check_schema(config, ("table", "RawConfig"), "", schema, errors)
    for e in errors:
        R.fail(f"{where}: {e}")
    if not errors:
        tables = ", ".join(sorted(config))
        R.ok(f"{where}: valid TOML, every key known to the gateway ({tables})")
    return config


def find_binary() -> Path | None:
    candidates = []
    if os.environ.get("SWITCHYARD_BIN"):
        candidates.append(Path(os.environ["SWITCHYARD_BIN"]))
    targets = [ROOT / "target"]
    if os.environ.get("CARGO_TARGET_DIR"):
        targets.insert(0, Path(os.environ["CARGO_TARGET_DIR"]))
    for t in targets:
        candidates += [t / "release" / "switchyard", t / "debug" / "switchyard"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    return None


def check_config_with_binary(binary: Path | None, text: str, where: str) -> None:
    if binary is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "switchyard.toml"
        path.write_text(text, encoding="utf-8")
        # A clean environment: no SWITCHYARD_* override of the caller's.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        try:
            r = subprocess.run(
                [str(binary), "check-config", str(path)],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            R.fail(f"{where}: could not run {binary} check-config: {e}")
            return
    if r.returncode == 0:
        R.ok(f"{where}: `switchyard check-config` accepts it ({rel(binary)})")
    else:
        R.fail(f"{where}: `switchyard check-config` refuses it: {(r.stderr or r.stdout).strip()}")


def presets() -> dict[str, list[str]]:
    """Preset name -> its key variables (data/presets.toml)."""
    if tomllib is None or not PRESETS.is_file():
        return {}
    data = tomllib.loads(PRESETS.read_text(encoding="utf-8"))
    return {p["name"]: list(p.get("api_key_env", [])) for p in data.get("preset", [])}


# ---------------------------------------------------------- kubernetes


def label_subset(selector, labels, what: str) -> None:
    if not isinstance(selector, dict) or not selector:
        R.fail(f"{what}: empty selector (it would select every pod, or none)")
        return
    extra = {k: v for k, v in selector.items() if labels.get(k) != v}
    R.check(
        not extra,
        f"{what} selects the Deployment's pods",
        f"{what}: selector {selector} does not match the pod labels {labels}",
    )


def check_kubernetes(schema: dict, binary: Path | None):
    """Checks deploy/kubernetes/; returns the pods' runAsUser when known."""
    files = sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        R.fail(f"{rel(K8S)}: no manifests")
        return
    objects: list[tuple[Path, dict]] = []
    kustomization = None
    for path in files:
        docs = load_yaml(path)
        if docs is None:
            continue
        if not docs:
            R.fail(f"{rel(path)}: no document")
        for i, doc in enumerate(docs):
            where = rel(path) + (f" (document {i + 1})" if len(docs) > 1 else "")
            if not isinstance(doc, dict):
                R.fail(f"{where}: not a mapping")
                continue
            missing = [k for k in ("apiVersion", "kind") if not isinstance(doc.get(k), str)]
            named = isinstance(dig(doc, "metadata", "name"), str)
            if doc.get("kind") != "Kustomization" and not named:
                missing.append("metadata.name")
            if missing:
                R.fail(f"{where}: missing {', '.join(missing)}")
                continue
            if doc["kind"] == "Kustomization":
                kustomization = (path, doc)
            else:
                objects.append((path, doc))
    R.ok(f"{len(files)} manifests parse ({'PyYAML' if yaml else 'fallback reader'}); "
         f"{len(objects)} objects: " + ", ".join(sorted({d['kind'] for _, d in objects})))

    by_kind: dict[str, list[tuple[Path, dict]]] = {}
    for path, doc in objects:
        by_kind.setdefault(doc["kind"], []).append((path, doc))

    # --- kustomization
    if kustomization is None:
        R.fail(f"{rel(K8S)}: no kustomization.yaml")
    else:
        kpath, k = kustomization
        resources = k.get("resources") or []
        missing = [r for r in resources if not (K8S / r).is_file()]
        R.check(not missing, "kustomization: every resource exists",
                f"kustomization: missing resources {missing}")
        expected = {p.name for p in files if p != kpath and p.name != SECRET_EXAMPLE}
        unlisted = sorted(expected - set(resources))
        R.check(not unlisted, "kustomization lists every manifest but the Secret example",
                f"kustomization: not listed: {unlisted}")
        R.check(SECRET_EXAMPLE not in resources,
                f"kustomization leaves {SECRET_EXAMPLE} out (apply -k never resets real secrets)",
                f"kustomization lists {SECRET_EXAMPLE}: `kubectl apply -k` would overwrite the "
                "real Secret with placeholders")

    # --- the Deployment
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        R.fail(f"expected one Deployment, found {len(deployments)}")
        return
    dpath, dep = deployments[0]
    name = dep["metadata"]["name"]
    pod = dig(dep, "spec", "template") or {}
    labels = dig(pod, "metadata", "labels") or {}
    replicas = dig(dep, "spec", "replicas", default=1)
    label_subset(dig(dep, "spec", "selector", "matchLabels"), labels, f"Deployment {name}")
    ru = dig(dep, "spec", "strategy", "rollingUpdate") or {}
    R.check(
        dig(dep, "spec", "strategy", "type", default="RollingUpdate") == "RollingUpdate"
        and str(ru.get("maxUnavailable", "")) in ("0", "0%")
        and str(ru.get("maxSurge", "0")) not in ("0", "0%"),
        "rolling update: maxUnavailable 0, maxSurge > 0",
        f"Deployment {name}: want a RollingUpdate with maxUnavailable 0 and maxSurge > 0, got {ru}",
    )
    containers = dig(pod, "spec", "containers") or []
    if not containers:
        R.fail(f"Deployment {name}: no containers")
        return
    c = containers[0]
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    numbers = set(ports.values())

    def port_ok(port) -> bool:
        return port in ports if isinstance(port, str) else port in numbers

    def port_number(port):
        return ports.get(port) if isinstance(port, str) else port

    probes = {}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = dig(c, probe, "httpGet") or {}
        probes[probe] = get.get("port")
        R.check(
            get.get("path") == path and port_ok(get.get("port")),
            f"{probe}: GET {path} on port {get.get('port')!r}",
            f"Deployment {name}: {probe} should be httpGet {path} on a container port, got {get}",
        )
    startup = dig(c, "startupProbe", "httpGet") or {}
    R.check(
        startup.get("path") in ("/healthz", "/readyz") and port_ok(startup.get("port")),
        f"startupProbe: GET {startup.get('path')} on port {startup.get('port')!r}",
        f"Deployment {name}: startupProbe should be httpGet /healthz or /readyz, got {startup}",
    )
    sc_pod = dig(pod, "spec", "securityContext") or {}
    sc = c.get("securityContext") or {}
    R.check(
        sc.get("runAsNonRoot", sc_pod.get("runAsNonRoot")) is True,
        "runAsNonRoot",
        f"Deployment {name}: set securityContext.runAsNonRoot: true",
    )
    read_only = sc.get("readOnlyRootFilesystem") is True
    R.check(read_only, "readOnlyRootFilesystem",
            f"Deployment {name}: set readOnlyRootFilesystem: true")
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in dig(pod, "spec", "volumes") or []}

    # --- Services
    services = [d for _, d in by_kind.get("Service", [])]
    data_service = None
    admin_port = None
    for svc in services:
        sname = svc["metadata"]["name"]
        label_subset(dig(svc, "spec", "selector"), labels, f"Service {sname}")
        for p in dig(svc, "spec", "ports") or []:
            target = p.get("targetPort", p.get("port"))
            R.check(port_ok(target), f"Service {sname}: targetPort {target!r} is a container port",
                    f"Service {sname}: targetPort {target!r} is not a port of the container")
            if target == probes.get("readinessProbe"):
                data_service = svc
            elif port_ok(target):
                admin_port = port_number(target)
    R.check(
        data_service is not None and probes.get("readinessProbe") == probes.get("livenessProbe"),
        f"the probes use the port the Service {dig(data_service, 'metadata', 'name')} targets "
        f"({probes.get('readinessProbe')!r})",
        "no Service targets the container port the probes use, or the probes use two ports",
    )
    if data_service is not None and isinstance(probes.get("readinessProbe"), int):
        R.note("the probes name a port number; a port name keeps Service and probes in step")

    # --- PDB and HPA
    for _, pdb in by_kind.get("PodDisruptionBudget", []):
        pname = pdb["metadata"]["name"]
        selector = dig(pdb, "spec", "selector", "matchLabels")
        label_subset(selector, labels, f"PodDisruptionBudget {pname}")
        min_av = dig(pdb, "spec", "minAvailable")
        max_un = dig(pdb, "spec", "maxUnavailable")
        blocks = (isinstance(min_av, int) and min_av >= replicas) or max_un in (0, "0", "0%")
        R.check(not blocks, f"PodDisruptionBudget {pname} lets a drain proceed",
                f"PodDisruptionBudget {pname} never allows an eviction with {replicas} replicas")
    if not by_kind.get("PodDisruptionBudget"):
        R.fail("no PodDisruptionBudget")
    for _, hpa in by_kind.get("HorizontalPodAutoscaler", []):
        hname = hpa["metadata"]["name"]
        ref = dig(hpa, "spec", "scaleTargetRef") or {}
        R.check(
            hpa["apiVersion"] == "autoscaling/v2"
            and ref.get("kind") == "Deployment" and ref.get("name") == name,
            f"HPA {hname} (autoscaling/v2) targets Deployment {name}",
            f"HPA {hname}: want autoscaling/v2 scaling Deployment {name}, got "
            f"{hpa['apiVersion']} {ref}",
        )
        lo, hi = dig(hpa, "spec", "minReplicas", default=1), dig(hpa, "spec", "maxReplicas")
        R.check(isinstance(hi, int) and lo <= hi and lo == replicas,
                f"HPA {hname}: {lo}..{hi} replicas, minimum = the Deployment's {replicas}",
                f"HPA {hname}: minReplicas {lo}, maxReplicas {hi}, Deployment replicas {replicas}")
        cpu = [m for m in dig(hpa, "spec", "metrics") or []
               if dig(m, "resource", "name") == "cpu"]
        R.check(bool(cpu) and dig(c, "resources", "requests", "cpu") is not None,
                f"HPA {hname} scales on CPU and the container requests CPU",
                f"HPA {hname}: needs a cpu Resource metric and a cpu request on the container")
    if not by_kind.get("HorizontalPodAutoscaler"):
        R.fail("no HorizontalPodAutoscaler")

    # --- the Secret example, and the environment the gateway will see:
    # the image's ENV, then envFrom, then env (each wins over the last).
    pod_env: dict[str, str] = image_env()
    secrets = by_kind.get("Secret", [])
    env_from = [dig(e, "secretRef", "name") for e in c.get("envFrom") or []]
    from_secret = False
    for spath, s in secrets:
        if s["metadata"]["name"] in env_from:
            from_secret = True
            pod_env.update({k: str(v) for k, v in (s.get("stringData") or {}).items()})
        R.check(
            spath.name == SECRET_EXAMPLE and "stringData" in s and "data" not in s,
            f"{rel(spath)}: an example with stringData placeholders",
            f"{rel(spath)}: Secrets belong in {SECRET_EXAMPLE} (stringData, placeholders only)",
        )
    R.check(from_secret, "the container takes its environment from the example Secret",
            f"Deployment {name}: envFrom names {env_from}, which no Secret in {rel(K8S)} defines")
    for e in c.get("env") or []:
        if isinstance(e, dict) and "value" in e:
            pod_env[e["name"]] = str(e["value"])  # env wins over envFrom

    # --- the ConfigMap's switchyard.toml, and how the Deployment uses it
    args = c.get("args") or []
    cfg_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    if cfg_path is None:
        R.fail(f"Deployment {name}: args should run `serve --config <file>`")
        return
    cfg_dir, cfg_file = cfg_path.rsplit("/", 1)
    mount = mounts.get(cfg_dir) or {}
    vol = volumes.get(mount.get("name")) or {}
    cm_name = dig(vol, "configMap", "name")
    cms = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", [])}
    cm = cms.get(cm_name)
    items = dig(vol, "configMap", "items")
    key = cfg_file
    if items:
        key = next((i.get("key") for i in items if i.get("path") == cfg_file), None)
    text = dig(cm, "data", key) if cm else None
    if not R.check(
        isinstance(text, str),
        f"--config {cfg_path} is key {key!r} of ConfigMap {cm_name}, mounted at {cfg_dir}",
        f"Deployment {name}: --config {cfg_path} is not a ConfigMap key mounted there",
    ):
        return
    where = f"ConfigMap {cm_name} {key}"
    config = validate_toml(text, where, schema)
    check_config_with_binary(binary, text, where)
    if config is None:
        return

    listen = effective(config, pod_env, "server", "listen", DEFAULTS["listen"])
    admin = effective(config, pod_env, "server", "admin_listen", DEFAULTS["admin_listen"])
    data_port = port_number(probes.get("readinessProbe"))
    R.check(addr_port(listen) == data_port and not addr_loopback(listen),
            f"listen {listen} is the probed container port on all interfaces",
            f"the gateway would listen on {listen} ([server] listen, or SWITCHYARD_LISTEN from "
            f"the image or the pod), not on all interfaces at the probed port {data_port}")
    if admin_port is not None:
        R.check(addr_port(admin) == admin_port and not addr_loopback(admin),
                f"admin_listen {admin} is the admin Service's container port",
                f"{where}: admin_listen {admin} should listen on port {admin_port} off loopback "
                "for the admin Service to reach it")
    R.check(dig(config, "auth", "require_keys") is not False
            and pod_env.get("SWITCHYARD_REQUIRE_KEYS") not in ("false", "0"),
            "Switchyard keys required",
            f"{where}: require_keys = false is refused off loopback")

    storage = effective(config, pod_env, "storage", "url", DEFAULTS["storage"])
    redis = effective(config, pod_env, "redis", "url")
    if isinstance(replicas, int) and replicas > 1:
        R.check(str(storage).startswith(("postgres://", "postgresql://")),
                f"{replicas} replicas share Postgres",
                f"{replicas} replicas need a shared postgres:// storage URL, got {storage!r}")
        R.check(bool(redis), f"{replicas} replicas share Redis",
                f"{replicas} replicas need [redis] url or SWITCHYARD_REDIS_URL: rate limits, "
                "budgets, cache and resumable streams are per replica without it")
    if isinstance(redis, str) and redis.startswith("rediss://"):
        R.fail("rediss:// is refused by the gateway (no Redis TLS in this build): "
               "use redis:// on a private network or a local TLS tunnel")

    token_var = dig(config, "auth", "admin_token_env", default=DEFAULTS["admin_token_env"])
    token = pod_env.get(token_var, "")
    R.check(len(token) >= 16,
            f"the Secret holds ${token_var} (one admin token for every replica)",
            f"the Secret should hold ${token_var} of at least 16 characters: without it each "
            "replica generates its own token (and writes it to the working directory)")

    known = presets()
    for i, p in enumerate(config.get("providers") or []):
        pname = p.get("name", f"providers[{i}]")
        if p.get("api_key_env"):
            wanted = [p["api_key_env"]]
        else:
            wanted = known.get(p.get("preset") or pname, [])
        if wanted:
            R.check(any(v in pod_env for v in wanted),
                    f"provider {pname}: ${wanted[0]} is in the Secret",
                    f"provider {pname}: the Secret has none of {wanted}")

    spool = dig(config, "logs", "spool_dir")
    if read_only and R.check(
        isinstance(spool, str) and spool.startswith("/"),
        f"spool_dir {spool} is set (the default is relative to the working directory)",
        f"{where}: set [logs] spool_dir to an absolute path on a writable volume",
    ):
        under = [m for m in mounts if spool == m or spool.startswith(m.rstrip("/") + "/")]
        m = mounts.get(max(under, key=len)) if under else None
        v = volumes.get(m.get("name")) if m else None
        if R.check(bool(m) and not m.get("readOnly") and v is not None and "configMap" not in v
                   and "secret" not in v,
                   f"spool_dir {spool} is on the writable volume {m and m.get('name')!r}",
                   f"{where}: spool_dir {spool} is not on a writable volume mount"):
            limit = parse_quantity(dig(v, "emptyDir", "sizeLimit"))
            spool_max = dig(config, "logs", "spool_max_bytes", default=256 * 2**20)
            if "emptyDir" in v and limit is not None:
                R.check(limit >= spool_max,
                        f"emptyDir sizeLimit {dig(v, 'emptyDir', 'sizeLimit')} >= "
                        f"spool_max_bytes {spool_max}",
                        f"emptyDir sizeLimit {dig(v, 'emptyDir', 'sizeLimit')} is below "
                        f"spool_max_bytes {spool_max}: the kubelet would evict the pod first")

    grace = parse_duration(dig(config, "server", "shutdown_grace_ms", default=10_000))
    tgps = dig(pod, "spec", "terminationGracePeriodSeconds", default=30)
    pre = dig(c, "lifecycle", "preStop") or {}
    sleep = dig(pre, "sleep", "seconds")
    cmd = dig(pre, "exec", "command") or []
    if sleep is None and len(cmd) == 2 and cmd[0] in ("sleep", "/bin/sleep"):
        try:
            sleep = float(cmd[1])
        except ValueError:
            sleep = None
    R.check(sleep is not None and sleep > 0, f"preStop sleeps {sleep:g}s before SIGTERM",
            f"Deployment {name}: add a preStop sleep so endpoints drop before SIGTERM")
    if grace is not None:
        need = (sleep or 0) + 3 * grace
        R.check(tgps >= need,
                f"terminationGracePeriodSeconds {tgps} >= preStop {sleep or 0:g}s + 3 x grace "
                f"{grace:g}s",
                f"terminationGracePeriodSeconds {tgps} is below preStop {sleep or 0:g}s + 3 x "
                f"shutdown_grace_ms ({grace:g}s): calls, then the spool flush, are cut by SIGKILL")
    return sc.get("runAsUser", sc_pod.get("runAsUser"))


# ------------------------------------------------------------- systemd


def read_unit(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            section = s.strip("[]")
            continue
        k, _, v = s.partition("=")
        out.setdefault(f"{section}.{k.strip()}", []).append(v.strip())
    return out


def check_systemd(schema: dict, binary: Path | None) -> None:
    unit_path = SYSTEMD / "switchyard.service"
    if not unit_path.is_file():
        R.fail(f"{rel(unit_path)} is missing")
        return
    unit = read_unit(unit_path)
    exec_start = (unit.get("Service.ExecStart") or [""])[-1].split()
    R.check(unit.get("Service.Type", ["simple"])[-1] == "simple",
            "Type=simple (the binary does not speak sd_notify)",
            f"{rel(unit_path)}: Type should be simple: the binary sends no sd_notify")
    cfg_path = None
    if len(exec_start) >= 4 and exec_start[1] == "serve" and "--config" in exec_start:
        cfg_path = exec_start[exec_start.index("--config") + 1]
    R.check(cfg_path is not None, f"ExecStart runs `serve --config {cfg_path}`",
            f"{rel(unit_path)}: ExecStart should run `switchyard serve --config FILE`")
    R.check(unit.get("Service.StateDirectory") == ["switchyard"], "StateDirectory=switchyard",
            f"{rel(unit_path)}: set StateDirectory=switchyard")
    env_files = [v.lstrip("-") for v in unit.get("Service.EnvironmentFile", [])]
    R.check("/etc/switchyard/env" in env_files,
            "EnvironmentFile=-/etc/switchyard/env",
            f"{rel(unit_path)}: secrets should come from EnvironmentFile=-/etc/switchyard/env")
    stop = parse_systemd_seconds((unit.get("Service.TimeoutStopSec") or ["90s"])[-1])

    example = SYSTEMD / "switchyard.toml"
    if example.is_file():
        if cfg_path and Path(cfg_path).name != example.name:
            R.fail(f"{rel(unit_path)}: ExecStart reads {cfg_path}, the example is {example.name}")
        text = example.read_text(encoding="utf-8")
        config = validate_toml(text, rel(example), schema)
        check_config_with_binary(binary, text, rel(example))
        if config is not None:
            grace = parse_duration(dig(config, "server", "shutdown_grace_ms", default=10_000))
            if grace is not None and stop is not None:
                R.check(stop >= 3 * grace,
                        f"TimeoutStopSec {stop:g}s >= 3 x shutdown_grace_ms ({grace:g}s)",
                        f"{rel(unit_path)}: TimeoutStopSec {stop:g}s is below 3 x shutdown grace "
                        f"({grace:g}s): SIGKILL may cut the spool flush")
            url = str(dig(config, "storage", "url", default=DEFAULTS["storage"]))
            if url.startswith("sqlite:"):
                path = re.sub(r"^sqlite:(//)?", "", url).split("?")[0]
                in_state = path.startswith("/var/lib/switchyard/") or (
                    not path.startswith("/")
                    and unit.get("Service.WorkingDirectory") == ["/var/lib/switchyard"]
                )
                R.check(in_state, f"the SQLite database ({url}) is in the StateDirectory",
                        f"{rel(example)}: storage {url} is outside /var/lib/switchyard, the "
                        "only writable place under ProtectSystem=strict")

    env_example = SYSTEMD / "env.example"
    if env_example.is_file():
        bad = [
            n for n, line in enumerate(env_example.read_text(encoding="utf-8").splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")
            and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", line.strip())
        ]
        R.check(not bad, f"{rel(env_example)}: NAME=value lines only",
                f"{rel(env_example)}: lines {bad} are not NAME=value")
    else:
        R.fail(f"{rel(env_example)} is missing")

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        R.note("systemd-analyze not found: unit not verified")
        return
    with tempfile.TemporaryDirectory() as tmp:
        # ExecStart must name an executable for verify to pass; the real one
        # is usually not installed here, so a stand-in takes its place.
        stub = Path(tmp) / "bin" / "switchyard"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        text = unit_path.read_text(encoding="utf-8")
        real = exec_start[0] if exec_start else "/usr/local/bin/switchyard"
        copy = Path(tmp) / unit_path.name
        copy.write_text(text.replace(real, str(stub)), encoding="utf-8")
        r = subprocess.run([analyze, "verify", str(copy)], cwd=tmp,
                           capture_output=True, text=True, timeout=120)
        out = (r.stdout + r.stderr).strip()
        ours = [line for line in out.splitlines() if unit_path.name in line or str(copy) in line]
        R.check(r.returncode == 0 and not ours,
                f"systemd-analyze verify passes (ExecStart {real} stood in for by a stub)",
                f"systemd-analyze verify: {out or 'exit ' + str(r.returncode)}")
        if out and not ours:
            R.note(f"systemd-analyze verify also said: {out}")
        s = subprocess.run([analyze, "security", "--offline=yes", str(copy)], cwd=tmp,
                           capture_output=True, text=True, timeout=120)
        score = re.search(r"Overall exposure level for \S+: (.*)", s.stdout + s.stderr)
        if score:
            R.ok(f"systemd-analyze security --offline=yes: exposure {score.group(1).strip()}")
        else:
            R.note("systemd-analyze security --offline=yes is not supported by this systemd")


# ----------------------------------------------------------- container


def image_env() -> dict[str, str]:
    """The ENV the Containerfile bakes into the image (NAME=value form)."""
    out: dict[str, str] = {}
    if CONTAINERFILE.is_file():
        for line in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
            if line.strip().upper().startswith("ENV "):
                for pair in line.split()[1:]:
                    k, eq, v = pair.partition("=")
                    if eq:
                        out[k] = v.strip('"')
    return out


def check_container(run_as_user) -> None:
    if not CONTAINERFILE.is_file():
        R.fail(f"{rel(CONTAINERFILE)} is missing")
        return
    text = CONTAINERFILE.read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    instr = [line for line in lines if line]
    expose = {int(p.split("/")[0]) for line in instr if line.upper().startswith("EXPOSE ")
              for p in line.split()[1:]}
    want = {addr_port(DEFAULTS["listen"]), addr_port(DEFAULTS["admin_listen"])}
    if CONFIG_RS.is_file():
        src = CONFIG_RS.read_text(encoding="utf-8")
        found = re.findall(r'DEFAULT_(?:ADMIN_)?LISTEN: &str = "([^"]+)"', src)
        if len(found) == 2:
            want = {addr_port(a) for a in found}
    R.check(want <= expose, f"Containerfile exposes the default ports {sorted(want)}",
            f"Containerfile: EXPOSE {sorted(expose)} lacks a default port of {sorted(want)}")
    users = [line.split()[1] for line in instr if line.upper().startswith("USER ")]
    uid = users[-1].split(":")[0] if users else None
    R.check(uid is not None and uid.isdigit() and uid != "0",
            f"Containerfile runs as numeric user {uid}",
            "Containerfile: the last USER should be a numeric, non-root uid")
    if run_as_user is not None and uid is not None:
        R.check(str(run_as_user) == uid, f"Deployment runAsUser {run_as_user} = the image's user",
                f"Deployment runAsUser {run_as_user} differs from the image's USER {uid}")
    R.check("cargo build --release --locked -p switchyard" in text,
            "Containerfile builds with `cargo build --release --locked -p switchyard`",
            "Containerfile: build with `cargo build --release --locked -p switchyard`")


def main() -> int:
    if tomllib is None:
        R.note("Python 3.11+ (tomllib) or tomli is needed to check the TOML files")
    if yaml is None:
        R.note("PyYAML not available: manifests read with check.py's own reader")
    schema = load_schema()
    binary = find_binary()
    if binary is None:
        R.note("no switchyard binary found: `check-config` not run (set SWITCHYARD_BIN)")
    print("-- kubernetes")
    run_as_user = check_kubernetes(schema, binary)
    print("-- systemd")
    check_systemd(schema, binary)
    print("-- container")
    check_container(run_as_user)
    if R.failures:
        print(f"\n{len(R.failures)} check(s) failed:", file=sys.stderr)
        for f in R.failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print("\nall deployment checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
