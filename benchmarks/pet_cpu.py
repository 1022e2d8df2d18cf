"""The Point-Edge Transformer on a CPU: seconds per network call (and per forward and backward pass, as in training)
of the shipped O-O and Pb-Pb particle networks and per kNN search, for one or more checkouts of hicgen side by side,
alternated, and against the size of the kNN's distance slice.

    python benchmarks/pet_cpu.py --trees /path/to/old-checkout . --repeats 3 --json docs/run_bench/pet_cpu.json

A shape BxN is one network call of B events padded to N particles (the last tenth of each event padding);
hicgen run fills a CPU call with up to 16,384 particles (engine.defaults.DEFAULT_TOKENS), so 2x8000 is a
central Pb-Pb call and 31x360 and 8x560 are O-O calls. Each tree is timed in its own process (PYTHONPATH = the
tree) on the same inputs, with the weights of the current checkout. Then, in this checkout, the kNN search of
each shape is timed with its slice capped at each of --slices elements (hicgen.models.pet.CPU_KNN_CHUNK_ELEMENTS
is the cap hicgen uses on a CPU); every slice must give the neighbours of the largest, or the script stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
SHAPES = {"PbPb": ["2x8000"], "OO": ["31x360", "8x560"]}


def best_seconds(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls of fn after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def particle_config(system: str) -> dict:
    """The particle network's architecture of the shipped model of `system`."""
    return json.loads((WEIGHTS / system.lower() / "config.json").read_text())["architecture"]["particle"]


def shape_inputs(shape: str, num_features: int, seed: int):
    """Noise-like particle features (B, N, F) for 'BxN' and the mask whose last tenth of each event is padding."""
    import torch

    bsz, n = (int(v) for v in shape.lower().split("x"))
    z = torch.randn(bsz, n, num_features, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(bsz, n, dtype=torch.bool)
    mask[:, n - n // 10:] = False
    return z, mask


def time_calls(repeats: int) -> list[dict]:
    """Seconds per forward pass, per forward and backward pass (a training step without the optimiser) and per kNN
    search of the shipped networks at SHAPES, with the hicgen on the path."""
    import torch

    from hicgen.models import pet

    rows = []
    for system, shapes in SHAPES.items():
        config = particle_config(system)
        torch.manual_seed(0)
        network = pet.PointEdgeTransformer(pet.PETConfig(**config)).eval()
        for shape in shapes:
            z, mask = shape_inputs(shape, config["num_features"], seed=2)
            t, cond = torch.full((z.shape[0],), 0.5), torch.zeros(z.shape[0], config["cond_dim"])
            geom = z[..., :2]

            def backward() -> None:
                network.zero_grad(set_to_none=True)
                network(z, t, cond, mask).square().mean().backward()

            with torch.no_grad():
                forward_s = best_seconds(lambda: network(z, t, cond, mask), repeats)
                knn_s = best_seconds(lambda: pet.knn_indices(geom, mask, config["num_neighbors"], config["phi_period"]), repeats)
            rows.append({"system": system, "shape": shape, "forward_s": forward_s,
                         "forward_backward_s": best_seconds(backward, repeats), "knn_s": knn_s})
    return rows


def time_tree(tree: Path, repeats: int, threads: int) -> list[dict]:
    """time_calls in a fresh process that imports hicgen from checkout `tree`."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--worker", "--repeats", str(repeats), "--threads", str(threads)]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"timing in {tree} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def time_slices(slices: list[int], repeats: int) -> list[dict]:
    """Seconds per kNN search at each cap on the slice size, in this checkout; identical neighbours asserted."""
    from hicgen.models import pet

    shipped, rows = pet.CPU_KNN_CHUNK_ELEMENTS, []
    for system, shapes in SHAPES.items():
        config = particle_config(system)
        for shape in shapes:
            z, mask = shape_inputs(shape, 2, seed=1)
            reference = None
            for elements in sorted(slices, reverse=True):
                pet.CPU_KNN_CHUNK_ELEMENTS = elements
                search = lambda: pet.knn_indices(z, mask, config["num_neighbors"], config["phi_period"], max(slices))  # noqa: E731
                index, _ = search()
                if reference is None:
                    reference = index
                elif not bool((index == reference).all()):
                    raise SystemExit(f"a slice of {elements} elements changed the neighbours of {shape}")
                rows.append({"shape": shape, "slice_elements": elements, "knn_s": best_seconds(search, repeats)})
    pet.CPU_KNN_CHUNK_ELEMENTS = shipped
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=Path, nargs="+", default=[Path(".")], help="hicgen checkouts to compare")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per shape (the fastest counts)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations over the trees")
    parser.add_argument("--slices", type=int, nargs="+", default=[1 << 24, 1 << 20, 1 << 18, 1 << 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(time_calls(args.repeats)))
        return
    trees = []
    for round_ in range(args.rounds):
        for tree in args.trees:
            for row in time_tree(tree.resolve(), args.repeats, args.threads):
                trees.append({"tree": str(tree), "round": round_, **row})
                print(f"{tree}: {row['system']:>4} {row['shape']:>8}  forward {row['forward_s']:.3f} s  forward + "
                      f"backward {row['forward_backward_s']:.3f} s  kNN {row['knn_s'] * 1e3:.1f} ms", flush=True)
    slices = time_slices(args.slices, args.repeats)
    for row in slices:
        print(f"kNN {row['shape']:>8}  slice {row['slice_elements']:>10,}  {row['knn_s'] * 1e3:8.1f} ms")
    if args.json:
        result = {"command": " ".join(sys.argv), "machine": platform.processor() or platform.machine(),
                  "cpus": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                  "date": time.strftime("%Y-%m-%d", time.gmtime()), "trees": trees, "slices": slices}
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
