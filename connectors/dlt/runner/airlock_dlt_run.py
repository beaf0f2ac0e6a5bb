"""Airlock's dlt runner: loads one table with a dlt source into dlt's
filesystem destination, as parquet (or csv), and describes what it wrote.

    python -I -u airlock_dlt_run.py CONFIG.json RESULT.json

Airlock's dlt connector (connectors/dlt, which embeds this file) writes
CONFIG.json and runs this script with the dlt virtualenv's python, in a
scratch folder that is also HOME, and with a minimal environment. CONFIG.json
never holds a secret: credentials arrive only as environment variables under
dlt's own config names, read here through dlt.secrets:

    SOURCES__SQL_DATABASE__CREDENTIALS__USERNAME / __PASSWORD
    SOURCES__REST_API__CREDENTIALS__TOKEN (bearer)
    SOURCES__REST_API__CREDENTIALS__USERNAME / __PASSWORD (HTTP basic)

Progress goes to stdout and dlt's warnings to stderr, a line at a time. The
outcome is one JSON document in RESULT.json, written only when the run ends:
on success the pipeline, dlt version, loads, tables (rows and columns) and
every file under the dataset folder; on failure {"error": ..., "kind": ...}.

Exit status: 0 when dlt recorded every load complete (load package state
"loaded", no failed job, and a _dlt_loads record with status 0); 2 when the
configuration is wrong (unknown table, no matching file, an endpoint that
answers 4xx, a missing driver): retrying cannot help; 1 for any other
failure.
"""

import json
import os
import sys
import time

EXIT_FAILED = 1
EXIT_CONFIG = 2

# The dataset folder's dlt bookkeeping (see describe_files): they go into the
# crate with the data.
DLT_LOADS = "_dlt_loads"
DLT_BOOKKEEPING = {DLT_LOADS, "_dlt_pipeline_state", "_dlt_version"}
DLT_INIT_FILE = "init"


class ConfigError(Exception):
    """A problem with what the data source describes; retrying cannot fix it."""


class IncompleteLoad(Exception):
    """dlt did not record a load as complete."""


def say(msg):
    print("dlt: " + msg, flush=True)


class ProgressLines:
    """A text stream for dlt's log collector that prints each of its blocks
    (a dashed step header, then a line per counter) as one line per counter:
    "dlt: Extract sql_database: patients: 1200 | Time: 0.40s | Rate: ..."."""

    def write(self, block):
        lines = [l.strip() for l in block.splitlines() if l.strip()]
        if not lines:
            return
        header = lines[0].strip("- ") if lines[0].startswith("-") else ""
        for line in lines[1:] if header else lines:
            say("%s: %s" % (header, line) if header else line)

    def flush(self):
        pass


def main(argv):
    if len(argv) != 3:
        print("usage: airlock_dlt_run.py CONFIG.json RESULT.json", file=sys.stderr)
        return EXIT_CONFIG
    config_path, result_path = argv[1], argv[2]
    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
        result = run(cfg)
    except BaseException as e:  # report everything, including KeyboardInterrupt
        kind, code, msg = classify(e)
        write_json(result_path, {"error": msg, "kind": kind})
        print("airlock-dlt: error: " + msg, file=sys.stderr, flush=True)
        return code
    write_json(result_path, result)
    say("done: load %s complete, %d file(s)" % (", ".join(l["load_id"] for l in result["loads"]), len(result["files"])))
    return 0


def run(cfg):
    import dlt

    started = time.monotonic()
    source = cfg["source"]
    table = cfg["table"]
    fmt = cfg.get("loader_file_format") or "parquet"
    dataset_dir = os.path.join(cfg["bucket_dir"], cfg["dataset_name"])
    say("version %s, loading %s %r into %s as %s" % (dlt.__version__, source, table, dataset_dir, fmt))

    if source == "sql_database":
        resource = sql_database_resource(dlt, cfg["sql"], table)
    elif source == "rest_api":
        resource = rest_api_resource(dlt, cfg["rest"], table)
    elif source == "filesystem":
        resource = filesystem_resource(dlt, cfg["filesystem"], table)
    else:
        raise ConfigError("unknown dlt source %r (expected sql_database, rest_api or filesystem)" % source)

    pipeline = dlt.pipeline(
        pipeline_name=cfg["pipeline_name"],
        pipelines_dir=cfg["pipelines_dir"],
        destination=dlt.destinations.filesystem(
            bucket_url=cfg["bucket_dir"],
            # The dataset folder is the object's folder in the crate, named
            # exactly as the data source names the table.
            enable_dataset_name_normalization=False,
        ),
        dataset_name=cfg["dataset_name"],
        progress=dlt.progress.log(
            log_period=float(cfg.get("log_period") or 10), logger=ProgressLines(), dump_system_stats=False
        ),
    )

    pipeline.extract(resource, loader_file_format=fmt)
    say("extracted in %.1fs" % (time.monotonic() - started))
    normalize_info = pipeline.normalize()
    row_counts = dict(normalize_info.row_counts)
    say("normalized: " + (", ".join("%s %d row(s)" % kv for kv in sorted(row_counts.items())) or "no rows"))
    if not any(n > 0 for t, n in row_counts.items() if not t.startswith("_dlt")):
        raise ConfigError(
            "%s %r yielded no rows, so dlt loaded nothing and there is nothing to import: "
            "check that the table (or endpoint, or files) holds data" % (source, table)
        )
    load_info = pipeline.load(raise_on_failed_jobs=True)

    loads = check_loads(load_info, dataset_dir)
    schema = pipeline.default_schema
    tables = describe_tables(schema, row_counts)
    if not tables:
        raise IncompleteLoad("dlt's schema describes no data table after loading %d row(s)" % sum(row_counts.values()))
    files = describe_files(cfg["output_dir"], dataset_dir, {t["name"] for t in tables})
    check_job_files(load_info, files, cfg["output_dir"])
    say("loaded %d table(s), %d file(s) in %.1fs" % (len(tables), len(files), time.monotonic() - started))
    return {
        "pipeline": pipeline.pipeline_name,
        "dlt_version": dlt.__version__,
        "source": source,
        "schema_name": schema.name,
        "dataset_name": cfg["dataset_name"],
        "destination": "filesystem",
        "loader_file_format": fmt,
        "loads": loads,
        "row_counts": row_counts,
        "tables": tables,
        "files": files,
    }


# --- sources -----------------------------------------------------------------


def sql_database_resource(dlt, sql, table):
    import sqlalchemy
    from sqlalchemy.engine import make_url
    from dlt.sources.sql_database import sql_table

    url = make_url(sql["url"])
    user = dlt.secrets.get("sources.sql_database.credentials.username")
    password = dlt.secrets.get("sources.sql_database.credentials.password")
    if user:
        url = url.set(username=user)
    if password:
        url = url.set(password=password)
    try:
        engine = sqlalchemy.create_engine(url)
    except ModuleNotFoundError as e:
        raise ConfigError(missing_driver(e)) from None
    schema = sql.get("schema") or None
    name = sql["table"]
    try:
        # The pyarrow backend keeps the database's column order and types
        # (decimals with their precision, dates, timestamps) in the parquet.
        return sql_table(credentials=engine, table=name, schema=schema, backend="pyarrow")
    except sqlalchemy.exc.NoSuchTableError:
        try:
            known = sqlalchemy.inspect(engine).get_table_names(schema=schema)
        except Exception:
            known = []
        where = " in schema %r" % schema if schema else ""
        raise ConfigError(
            "table %r not found%s in the database (it has: %s): check the object's table name"
            % (name, where, ", ".join(sorted(known)) or "no tables")
        ) from None


def missing_driver(e):
    return (
        "the dlt environment has no %r module, which this database URL needs: add its driver to "
        "connectors/dlt/requirements.txt and run deploy/tools/install.sh dlt" % e.name
    )


def rest_api_resource(dlt, rest, table):
    from dlt.sources.rest_api import rest_api_resources

    client = {"base_url": rest["base_url"]}
    auth = rest.get("auth") or ""
    if auth == "bearer":
        token = dlt.secrets.get("sources.rest_api.credentials.token")
        if not token:
            raise ConfigError("no token in SOURCES__REST_API__CREDENTIALS__TOKEN")
        client["auth"] = {"type": "bearer", "token": token}
    elif auth == "http_basic":
        user = dlt.secrets.get("sources.rest_api.credentials.username")
        password = dlt.secrets.get("sources.rest_api.credentials.password")
        if not user or not password:
            raise ConfigError("HTTP basic auth needs SOURCES__REST_API__CREDENTIALS__USERNAME and __PASSWORD")
        client["auth"] = {"type": "http_basic", "username": user, "password": password}
    elif auth:
        raise ConfigError("unknown rest_api auth %r" % auth)
    resources = rest_api_resources(
        {"client": client, "resources": [{"name": table, "endpoint": {"path": rest["path"]}}]}
    )
    return resources[0]


def local_path(file_url):
    from urllib.parse import unquote, urlparse

    u = urlparse(file_url)
    if u.scheme not in ("", "file"):
        raise ConfigError("%s is not a local file" % file_url)
    return unquote(u.path)


READERS = {"csv": "read_csv", "jsonl": "read_jsonl", "parquet": "read_parquet"}


def filesystem_resource(dlt, fs, table):
    from dlt.common.storages.fsspec_filesystem import fsspec_filesystem, glob_files
    from dlt.sources import filesystem as fs_source

    bucket_url, glob, root = fs["bucket_url"], fs["glob"], fs["root"]
    if fs["format"] not in READERS:
        raise ConfigError("unknown file format %r (expected csv, jsonl or parquet)" % fs["format"])
    reader = getattr(fs_source, READERS[fs["format"]])

    def confined(item):
        # The glob runs inside the connection's folder, but a symlink there
        # could lead anywhere: read only files whose real path is inside the
        # worker's file root.
        path = os.path.realpath(local_path(item["file_url"]))
        if os.path.commonpath([path, root]) != root:
            raise ConfigError(
                "%s leads outside the worker's file root through a symlink: the connector does not "
                "follow links out of its root; copy the data inside it instead" % item["relative_path"]
            )
        return item

    client = fsspec_filesystem(bucket_url)[0]
    matched = [confined(f) for f in glob_files(client, bucket_url, glob)]
    if not matched:
        raise ConfigError("no file matches %r in %s: check the glob and the folder" % (glob, bucket_url))
    say("%d file(s) match %r" % (len(matched), glob))
    files = fs_source.filesystem(bucket_url=bucket_url, file_glob=glob).add_map(confined)
    return (files | reader()).with_name(table)


# --- checks and descriptions ---------------------------------------------------


def check_loads(load_info, dataset_dir):
    """Returns the loads, each checked complete by dlt's own two records: the
    load package's state and the _dlt_loads row the destination wrote."""
    if not load_info.loads_ids:
        raise IncompleteLoad("dlt loaded no package: nothing was extracted")
    if load_info.has_failed_jobs:
        load_info.raise_on_failed_jobs()
    recorded = {}
    loads_dir = os.path.join(dataset_dir, DLT_LOADS)
    for name in sorted(os.listdir(loads_dir)) if os.path.isdir(loads_dir) else []:
        with open(os.path.join(loads_dir, name), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    recorded[row["load_id"]] = row
    loads = []
    for package in load_info.load_packages:
        failed = package.jobs["failed_jobs"]
        if package.state != "loaded" or failed:
            raise IncompleteLoad(
                "load package %s is %s with %d failed job(s): %s"
                % (package.load_id, package.state, len(failed), "; ".join(j.failed_message or "" for j in failed))
            )
        row = recorded.get(package.load_id)
        if row is None:
            raise IncompleteLoad("dlt wrote no %s record for load %s" % (DLT_LOADS, package.load_id))
        if row.get("status") != 0:
            raise IncompleteLoad(
                "dlt recorded load %s with status %r, not 0 (complete)" % (package.load_id, row.get("status"))
            )
        loads.append(
            {
                "load_id": package.load_id,
                "state": package.state,
                "status": row["status"],
                "inserted_at": row.get("inserted_at"),
                "schema_name": row.get("schema_name"),
                "schema_version_hash": row.get("schema_version_hash"),
                "completed_jobs": len(package.jobs["completed_jobs"]),
                "failed_jobs": 0,
            }
        )
    return loads


def describe_tables(schema, row_counts):
    """The data tables (dlt's own _dlt_* tables left out) with their row
    counts and columns, in the order dlt holds them."""
    tables = []
    for t in schema.data_tables(include_incomplete=True):
        columns = [
            {"name": c["name"], "type": column_type(c)}
            for c in t.get("columns", {}).values()
            if c.get("data_type")
        ]
        if not columns:
            continue
        tables.append({"name": t["name"], "rows": int(row_counts.get(t["name"], 0)), "columns": columns})
    return tables


def column_type(c):
    t = c["data_type"]
    if c.get("precision") is not None:
        if c.get("scale") is not None:
            t += "(%d,%d)" % (c["precision"], c["scale"])
        else:
            t += "(%d)" % c["precision"]
    if t.startswith(("timestamp", "time")) and c.get("timezone") is False:
        t += " without time zone"
    return t


def describe_files(output_dir, dataset_dir, data_tables):
    """Every file under the dataset folder, none left out. Besides the data
    (one folder per table), dlt keeps its bookkeeping there, and it all goes
    into the crate: _dlt_loads holds the record that dlt completed the load
    (status 0), _dlt_version the full dlt schema the columns above come from,
    and init the storage version (_dlt_pipeline_state too, were dlt to write
    it; Airlock turns dlt's state sync off, as every run starts afresh).
    They are a few small files, they are the provenance of the data, and
    with them the folder is a dlt dataset that dlt itself can read back."""
    files = []
    for here, dirs, names in os.walk(dataset_dir):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(here, name)
            rel_dataset = os.path.relpath(full, dataset_dir).replace(os.sep, "/")
            top = rel_dataset.split("/", 1)[0]
            if top in data_tables and "/" in rel_dataset:
                kind, table = "data", top
            elif top in DLT_BOOKKEEPING or rel_dataset == DLT_INIT_FILE:
                kind, table = "dlt", ""
            else:
                kind, table = "other", ""
            files.append(
                {
                    "path": os.path.relpath(full, output_dir).replace(os.sep, "/"),
                    "table": table,
                    "kind": kind,
                    "size": os.path.getsize(full),
                }
            )
    return files


def check_job_files(load_info, files, output_dir):
    """Every data file dlt says a completed job wrote must be among files."""
    listed = {f["path"] for f in files}
    for package in load_info.load_packages:
        for metrics in load_info.metrics.get(package.load_id, []):
            for job in metrics.get("job_metrics", {}).values():
                url = job.remote_url
                if not url:
                    continue
                path = url[len("file://"):] if url.startswith("file://") else url
                rel = os.path.relpath(path, output_dir).replace(os.sep, "/")
                if rel not in listed:
                    raise IncompleteLoad("dlt reports writing %s, which is not in the dataset folder" % rel)


# --- errors --------------------------------------------------------------------


def causes(e):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = getattr(e, "exception", None) or e.__cause__ or e.__context__


def classify(e):
    """Returns (kind, exit status, message) for an exception."""
    chain = list(causes(e))
    for c in chain:
        if isinstance(c, ConfigError):
            return "config", EXIT_CONFIG, str(c)
    for c in chain:
        if isinstance(c, ModuleNotFoundError):
            return "config", EXIT_CONFIG, missing_driver(c)
        response = getattr(c, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            url = getattr(response, "url", "") or ""
            msg = "HTTP %d from %s" % (status, url.split("?", 1)[0])
            if status in (408, 425, 429):
                return "failed", EXIT_FAILED, msg + " (the server asks to try later)"
            hint = {
                401: "the credentials were refused: check the secret the connection names",
                403: "the credentials may not read this endpoint",
                404: "no such endpoint: check the table name (the path below the url)",
            }.get(status, "the request was refused: check the table name and the url")
            return "config", EXIT_CONFIG, msg + ": " + hint
    if isinstance(e, KeyboardInterrupt):
        return "failed", EXIT_FAILED, "interrupted"
    root = chain[-1]
    msg = "%s: %s" % (type(root).__name__, root)
    if root is not e:
        step = getattr(e, "step", None)
        msg = ("dlt %s step failed: " % step if step else "") + msg
    return "failed", EXIT_FAILED, msg


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, default=str)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
