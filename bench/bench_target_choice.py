"""How long the Datasets page is blocked after choosing the target column, with and without a zip of CIFs
(issue 16, item 9: 62 s for 599 rows and 321 CIFs in a real browser).

A generated table of ``--rows`` rows (default 600), ``--cifs`` of them (default 300) naming a CIF of an uploaded zip,
is uploaded in Streamlit's ``AppTest`` (``app.py``, first page Datasets, fresh SQLite database); its target column
(``measured (S/cm)``, a name the mapping does not guess) is then chosen, and the run that follows is timed: the page
is usable again when it returns. The same table without the zip (and without its CIF column) is the reference, in
the same run. The CIFs are the OBELiX CIFs of ``/work/shared/data/li_conductivity/cifs`` (real pymatgen-readable
structures; when there are fewer than ``--cifs``, they repeat under other member names), or generated rock-salt
cells when that folder is absent. Each page state is a fresh interpreter with the first page already rendered, so
imports are not counted; the reading's fork server starts during the measured steps, as after a server start.

Measures, per checkout and page, the median over ``--repeat`` fresh interpreters:

- ``choice``: seconds of the run after choosing the target column;
- ``import_enabled``: seconds from choosing the target until the Import button is enabled (the page polled once a
  second, as its progress bar does; before the background reading, the same as ``choice``).

Run from the repository root: ``.venv/bin/python bench/bench_target_choice.py [--root OTHER_CHECKOUT ...]``; to
compare with an older commit, ``git worktree add /tmp/before <commit>`` and pass ``--root /tmp/before --root .``.
Prints one ``TARGET_CHOICE`` line per checkout and page, then the ratio with CIFs / without.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

OBELIX = Path("/work/shared/data/li_conductivity")
TARGET = "measured (S/cm)"

PROGRAM = """
import json, sys, time
from pathlib import Path
from streamlit.testing.v1 import AppTest
from db.engine import upgrade_database

url, table, archive = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
upgrade_database(url)
at = AppTest.from_file("app.py", default_timeout=900)
at.run()
at.file_uploader[0].set_value((table.name, table.read_bytes(), "text/csv"))
if archive:
    at.file_uploader[1].set_value(("structures.zip", Path(archive).read_bytes(), "application/zip"))
started = time.perf_counter()
at.run()
upload = time.perf_counter() - started
assert not at.exception, at.exception
key = next(s.key for s in at.selectbox if s.key and s.key.startswith("map_target_"))
assert at.selectbox(key=key).value == "(none)", "the target column must be chosen by hand"
at.selectbox(key=key).set_value(sys.argv[4])
started = time.perf_counter()
at.run()
choice = time.perf_counter() - started
assert not at.exception, at.exception

def import_disabled():
    return next(b for b in at.button if b.key and b.key.startswith("import_")).disabled

while import_disabled():  # the page's progress bar reruns it once a second until the CIFs are read
    time.sleep(1.0)
    at.run()
enabled = time.perf_counter() - started
unreadable = sum("cannot be read" in w.value for w in at.warning)
print(json.dumps({"upload": upload, "choice": choice, "import_enabled": enabled, "unreadable": unreadable}))
"""


def obelix_rows() -> list[tuple[str, str, str]]:
    """OBELiX train rows as ``(ID, formula, conductivity text)``, those with a CIF first."""
    with open(OBELIX / "train.csv", newline="", encoding="utf-8") as handle:
        rows = [(r["ID"], r["Reduced Composition"], r["Ionic conductivity (S cm-1)"]) for r in csv.DictReader(handle)]
    with_cif = {path.stem for path in (OBELIX / "cifs").glob("*.cif")}
    return sorted(rows, key=lambda row: row[0] not in with_cif)


def generated_cif(i: int) -> str:
    """A rock-salt LiCl-type cell with a lattice constant depending on ``i`` (when OBELiX is absent)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(5.0 + 0.01 * (i % 100)), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")


def make_inputs(folder: Path, n_rows: int, n_cifs: int) -> tuple[Path, Path, Path, str]:
    """The table with a CIF column, its zip, the same table without CIFs, and where the CIFs came from."""
    if (OBELIX / "cifs").is_dir():
        rows = obelix_rows()
        cif_files = sorted((OBELIX / "cifs").glob("*.cif"))
        source = f"{len(cif_files)} OBELiX CIFs"
    else:
        rows = [(f"g{i}", "LiCl", "1e-5") for i in range(n_rows)]
        cif_files = []
        source = "generated rock-salt cells"
    with_cif, without_cif = io.StringIO(), io.StringIO()
    a, b = csv.writer(with_cif), csv.writer(without_cif)
    a.writerow(["id", "formula", TARGET, "cif"])
    b.writerow(["id", "formula", TARGET])
    archive = folder / "structures.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for i in range(n_rows):
            sample, formula, value = rows[i % len(rows)]
            name = f"s{i:04d}"
            member = ""
            if i < n_cifs:
                member = f"{name}.cif"
                text = cif_files[i % len(cif_files)].read_text() if cif_files else generated_cif(i)
                zipped.writestr(member, text)
            a.writerow([name, formula, value, member])
            b.writerow([name, formula, value])
    (folder / "with_cifs.csv").write_text(with_cif.getvalue())
    (folder / "without_cifs.csv").write_text(without_cif.getvalue())
    return folder / "with_cifs.csv", archive, folder / "without_cifs.csv", source


def measure(root: Path, table: Path, archive: Path | None) -> dict:
    """One fresh interpreter in ``root``: upload, choose the target, wait until Import is enabled."""
    with tempfile.TemporaryDirectory() as data:
        url = f"sqlite:///{data}/cosnet.db"
        env = {**os.environ, "COSNET_DATA_DIR": data, "COSNET_DATABASE_URL": url, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", PROGRAM, url, str(table), str(archive or ""), TARGET],
                              cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{root}: failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Time the target choice with and without CIFs for each checkout; print one line per checkout and page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", action="append", type=Path, help="a checkout (default: this one); repeatable")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--cifs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    roots = args.root or [Path(__file__).resolve().parents[1]]
    with tempfile.TemporaryDirectory() as folder:
        table, archive, plain, source = make_inputs(Path(folder), args.rows, args.cifs)
        print(f"TARGET_CHOICE inputs: {args.rows} rows, {args.cifs} with a CIF ({source}); "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}", flush=True)
        for root in roots:
            root = root.resolve()
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                    text=True).stdout.strip()
            medians = {}
            for page, files in (("without_cifs", (plain, None)), ("with_cifs", (table, archive))):
                runs = [measure(root, *files) for _ in range(args.repeat)]
                medians[page] = {k: statistics.median(r[k] for r in runs) for k in ("choice", "import_enabled")}
                each = ",".join(f"{r['choice']:.2f}/{r['import_enabled']:.2f}" for r in runs)
                print(f"TARGET_CHOICE root={root} commit={commit} page={page} "
                      f"choice={medians[page]['choice']:.2f}s import_enabled={medians[page]['import_enabled']:.2f}s "
                      f"runs={each} "
                      f"unreadable_cifs={runs[0]['unreadable']}", flush=True)
            ratio = medians["with_cifs"]["choice"] / max(medians["without_cifs"]["choice"], 1e-9)
            print(f"TARGET_CHOICE root={root} commit={commit} ratio_with/without_cifs={ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
