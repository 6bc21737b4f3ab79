"""Reads what `perf stat -x,` wrote (bench/lib.sh perf_counts) and the
top-symbols file of perf_top, for the bench scripts' report code."""


def counts(path):
    """{event: value} from a `perf stat -x,` output file."""
    c = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            c[f[2]] = float(f[0])
    return c


def top(path):
    """The top-symbol lines of a perf_top file, spaces collapsed."""
    return [" ".join(l.split()).removesuffix(" - -") for l in open(path)]
