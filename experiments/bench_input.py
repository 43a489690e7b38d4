"""Input throughput of jaxdl's streaming pipeline vs torchvision's ImageFolder + DataLoader, and its memory.

    python experiments/bench_input.py throughput --workers 2 --images 1024
    python experiments/bench_input.py memory --small 10000 --large 100000
    python experiments/bench_input.py per-image --images 300

per-image: milliseconds per image in one thread, jaxdl's decoder (training transform) vs torchvision's
RandomResizedCrop + flip + PILToTensor on PIL, the same files: the pipelines' work without their workers.

throughput: the same files, the same transforms (decode, random-resized crop 224, horizontal flip,
uint8) and the same number of workers (torchvision: DataLoader worker processes; jaxdl: Grain threads
or worker processes, `data.worker_mode`), images/s over one pass of `--images` images (from the arrival of
batch `--workers`, by which every worker has started and delivered, to the last one's), on (a) Fashion-MNIST written as PNGs by `jaxdl-data write-folder` and (b)
JPEG photographs of 400-600 px cut and scaled from scikit-image's bundled colour photographs (9
photographs, one class each; random crops of 40-100% of each side, resized to a random 400-600 x
400-600). Entries: `<set>_threads` and `<set>_processes` (jaxdl's two worker modes, each against the
same torchvision run), `photo_jpeg_pack_threads` / `_processes` (jaxdl reading a `jaxdl-data pack` of the
JPEGs, max_side 256, against torchvision on the original JPEGs) and `photo_jpeg_processes_1_to_2` (jaxdl's images/s with 2
worker processes over 1, each with the read threads a worker of the 2 gets: cores // 2; a lone worker would
otherwise run cores // 1 threads and already use every core).

CPU: every throughput row also gives `cpu_ms_per_image`, the CPU time (user + system) of the process and all
its live worker processes (psutil; `main_cpu_ms_per_image`: the process's own share) from batch `--workers` to the last, per image (start-up and shut-down apart): what a pipeline costs per image
whatever else loads the machine (wall-clock images/s on a shared machine move with the load; CPU time much less).

memory: peak RSS of one process streaming one epoch (train_batches at batch 256, onto the device)
over a tree of `--small` and of `--large` files; the large tree repeats the small one's files under
new names (hard links), so only the number of files differs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "stereo_motorcycle",
)
BATCH = 64
PEERS = ("jaxdl", "torchvision")


def write_photo_jpegs(root: Path, count: int, seed: int = 0) -> Path:
    """`count` JPEGs of 400-600 px in root/<photo>/, cut at random from scikit-image's colour photographs."""
    import skimage.data

    if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) >= count:
        return root
    rng = np.random.default_rng(seed)
    sources = {}
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        sources[name] = Image.fromarray(image[0] if isinstance(image, tuple) else image)
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        src = sources[name]
        w, h = (int(src.width * rng.uniform(0.4, 1.0)), int(src.height * rng.uniform(0.4, 1.0)))
        left, top = int(rng.integers(0, src.width - w + 1)), int(rng.integers(0, src.height - h + 1))
        size = (int(rng.integers(400, 601)), int(rng.integers(400, 601)))
        out = root / name / f"{i:06d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        src.crop((left, top, left + w, top + h)).resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=90)
    return root


def write_fashion_pngs(root: Path, count: int) -> Path:
    """The first `count` Fashion-MNIST training images as root/<class>/<index>.png (jaxdl's write_folder)."""
    if (root / "train").is_dir() and sum(1 for _ in (root / "train").rglob("*.png")) >= count:
        return root / "train"
    import dataclasses

    from jaxdl.data import load_dataset
    from jaxdl.data.folder_tools import write_folder
    from tests.conftest import compose_config

    fashion = load_dataset(compose_config("data=fashion_mnist").data)
    first = fashion.train.subset(np.arange(count))
    tiny = fashion.val.subset(np.arange(len(fashion.class_names)))
    write_folder(dataclasses.replace(fashion, train=first, val=tiny, test=tiny), root)
    return root / "train"


def write_pack(root: Path, out: Path, workers: int) -> Path:
    """`jaxdl-data pack` of the folder at `root` (shorter sides at most 256 px, JPEG quality 90)."""
    from jaxdl.apps.data import run

    if not (out / "pack.json").is_file():
        print(run("pack", ["data=folder", f"data.root={root}", f"out={out}", f"workers={workers}"]), flush=True)
    return out


def cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of (this process, its workers: live descendants and the children that have ended
    and were waited for, i.e. the workers of a finished pass)."""
    import psutil

    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = ended.ru_utime + ended.ru_stime
    for proc in psutil.Process().children(recursive=True):
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        workers += times.user + times.system
    own = psutil.Process().cpu_times()
    return own.user + own.system, workers


def _timed(batches, workers: int) -> dict:
    """images/s and CPU ms per image from the arrival of batch max(1, `workers`) to the last one's: every worker
    has started and delivered by then (each worker process of either peer makes whole batches, so a lone first
    batch can arrive while another worker is still importing), and neither peer's worker shut-down counts."""
    start = time.perf_counter()
    first = last = None
    count = 0
    for k, batch in enumerate(batches, 1):
        if k == max(1, workers):
            first = (time.perf_counter(), cpu_seconds())
        elif first is not None:
            count += batch.shape[0]
            last = (time.perf_counter(), cpu_seconds())
    main, workers = (1e3 * (b - a) / count for a, b in zip(first[1], last[1], strict=True))
    return {
        "images_per_s": count / (last[0] - first[0]),
        "cpu_ms_per_image": main + workers,
        "main_cpu_ms_per_image": main,  # the training process's share: what bounds scaling over worker processes
        "first_batch_s": first[0] - start,
        "images": count,
    }


def jaxdl_rate(root: Path, workers: int, images: int, channels: int, mode: str = "thread", threads: int | None = None) -> dict:
    """images/s of jaxdl's training stream over the folder (or, if `root` holds pack.json, the pack) at `root`."""
    from jaxdl.data import load_dataset
    from jaxdl.data.stream import StreamLoader
    from jaxdl.parallel import data_mesh
    from tests.conftest import compose_config

    source = (
        ["data=packed", f"data.path={root}"]
        if (root / "pack.json").is_file()
        else ["data=folder", f"data.root={root}", "data.stream=true", "data.val_fraction=0.01", "data.test_fraction=0.01"]
    )
    cfg = compose_config(
        *source,
        "data.image_size=224",
        f"data.channels={channels}",
        f"data.workers={workers}",
        f"data.worker_mode={mode}",
        f"data.worker_threads={'null' if threads is None else threads}",
    )
    split = load_dataset(cfg.data).train
    split = split.subset(np.arange(min(images, len(split))))
    batches = (batch.block_until_ready() for batch, _ in StreamLoader(split, data_mesh()).train_batches(BATCH, seed=0, epoch=1))
    return _timed(batches, workers)


def torch_rate(root: Path, workers: int, images: int, channels: int) -> dict:
    import torch
    from torchvision import datasets, transforms

    torch.set_num_threads(1)
    mode = "L" if channels == 1 else "RGB"
    transform = transforms.Compose(
        [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.PILToTensor()]
    )
    folder = datasets.ImageFolder(str(root), transform=transform, loader=lambda p: Image.open(p).convert(mode))
    subset = torch.utils.data.Subset(folder, np.random.default_rng(0).permutation(len(folder))[:images].tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    return _timed((batch for batch, _ in loader), workers)


def _ratios(entry: dict) -> None:
    best = {peer: max(r["images_per_s"] for r in runs) for peer, runs in entry.items()}
    median = {peer: float(np.median([r["images_per_s"] for r in runs])) for peer, runs in entry.items()}
    entry["ratio_best"] = best["jaxdl"] / best["torchvision"]
    entry["ratio_median"] = median["jaxdl"] / median["torchvision"]
    cpu = {peer: float(np.median([r["cpu_ms_per_image"] for r in runs])) for peer, runs in entry.items() if peer in PEERS}
    entry["cpu_ms_per_image_median"] = cpu
    entry["cpu_ratio_median"] = cpu["torchvision"] / cpu["jaxdl"]  # > 1: jaxdl spends less CPU per image


def throughput(args) -> None:
    from jaxdl.data.workers import usable_cores

    work = Path(args.work)
    photos = write_photo_jpegs(work / "photo_jpeg", args.photos)
    sets = {"photo_jpeg": (photos, 3)}
    if not args.skip_png:
        sets["fashion_png"] = (write_fashion_pngs(work / "fashion_png", args.pngs), 1)
    pack = write_pack(photos, work / "photo_pack", args.workers)
    results = {}
    for repeat in range(args.repeats):  # alternate everything, so a busy moment on the shared machine hits all
        for name, (root, channels) in sets.items():
            peer = torch_rate(root, args.workers, args.images, channels)
            print(name, "torchvision", repeat, json.dumps(peer), flush=True)
            runs = {f"{name}_threads": (root, "thread"), f"{name}_processes": (root, "process")}
            if name == "photo_jpeg":
                runs[f"{name}_pack_threads"] = (pack, "thread")
                runs[f"{name}_pack_processes"] = (pack, "process")
            for entry, (source, mode) in runs.items():
                r = jaxdl_rate(source, args.workers, args.images, channels, mode)
                print(entry, "jaxdl", repeat, json.dumps(r), flush=True)
                results.setdefault(entry, {"jaxdl": [], "torchvision": []})
                results[entry]["jaxdl"].append(r)
                results[entry]["torchvision"].append(peer)
        one = jaxdl_rate(photos, 1, args.images, 3, "process", threads=max(1, usable_cores() // args.workers))
        print("photo_jpeg 1 process", repeat, json.dumps(one), flush=True)
        results.setdefault("photo_jpeg_processes_1", []).append(one)
    for name, entry in results.items():
        if "jaxdl" in entry:
            _ratios(entry)
            print(
                f"{name}: ratio to torchvision {entry['ratio_best']:.2f} (of the medians: {entry['ratio_median']:.2f}); "
                f"CPU ms per image {entry['cpu_ms_per_image_median']['jaxdl']:.2f} vs "
                f"{entry['cpu_ms_per_image_median']['torchvision']:.2f} ({entry['cpu_ratio_median']:.2f}x less)"
            )
    one = float(np.median([r["images_per_s"] for r in results["photo_jpeg_processes_1"]]))
    two = float(np.median([r["images_per_s"] for r in results["photo_jpeg_processes"]["jaxdl"]]))
    cpu_one = float(np.median([r["cpu_ms_per_image"] for r in results["photo_jpeg_processes_1"]]))
    results["photo_jpeg_processes_1_to_2"] = {"one": one, "two": two, "ratio_median": two / one, "cpu_ms_per_image_one": cpu_one}
    worker = cpu_one - float(np.median([r["main_cpu_ms_per_image"] for r in results["photo_jpeg_processes_1"]]))
    main = float(np.median([r["main_cpu_ms_per_image"] for r in results["photo_jpeg_processes"]["jaxdl"]]))
    bound = 2 * worker / (worker + main)  # w: a worker's CPU per image, m: this process's (RESULTS.md, issue 22)
    cpu_two = float(np.median([r["cpu_ms_per_image"] for r in results["photo_jpeg_processes"]["jaxdl"]]))
    cores = 1e3 * usable_cores() / cpu_two / one  # every core busy at the 2-worker CPU per image, over 1 worker's rate
    results["photo_jpeg_processes_1_to_2"].update(bound=bound, cores_bound=cores)
    print(
        f"photo_jpeg: 1 -> 2 worker processes {one:.0f} -> {two:.0f} img/s ({two / one:.2f}x; 2w/(w+m) {bound:.2f}x, "
        f"cores / CPU per image {cores:.2f}x)"
    )
    results["pack_bytes_per_image"] = json.loads((pack / "pack.json").read_text())["bytes_per_image"]
    results["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    Path(args.out).write_text(json.dumps(results, indent=2))


def per_image(args) -> None:
    """Milliseconds per image in one thread: jaxdl's decoder (training transform) vs torchvision's transform."""
    import torch
    from torchvision import transforms

    from jaxdl.data.images import ImageDecoder

    torch.set_num_threads(1)
    work = Path(args.work)
    sets = {
        "fashion_png": (write_fashion_pngs(work / "fashion_png", args.images), 1, "*.png"),
        "photo_jpeg": (write_photo_jpegs(work / "photo_jpeg", args.photos), 3, "*.jpg"),
    }
    crop = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
    for name, (root, channels, pattern) in sets.items():
        files = sorted(str(p) for p in root.rglob(pattern))[: args.images]
        decoder, mode = ImageDecoder(224, channels), "L" if channels == 1 else "RGB"
        peers = {
            "jaxdl": lambda i: decoder(files[i], np.random.default_rng([0, 1, i])),
            "torchvision": lambda i: crop(Image.open(files[i]).convert(mode)),
        }
        times = {peer: [] for peer in peers}
        for _ in range(args.repeats):  # alternated, as in `throughput`
            for peer, fn in peers.items():
                start = time.perf_counter()
                for i in range(len(files)):
                    fn(i)
                times[peer].append((time.perf_counter() - start) / len(files) * 1e3)
        best = {peer: min(t) for peer, t in times.items()}
        print(
            f"{name}: ms per image, one thread (best of {args.repeats}): jaxdl {best['jaxdl']:.3f}, "
            f"torchvision {best['torchvision']:.3f}, speed ratio {best['torchvision'] / best['jaxdl']:.2f}",
            flush=True,
        )


def memory_child(root: str, workers: int) -> None:
    """One epoch streamed over every file under `root`; prints the peak RSS in MiB."""
    from jaxdl.data import load_dataset
    from jaxdl.data.stream import StreamLoader
    from jaxdl.parallel import data_mesh
    from tests.conftest import compose_config

    cfg = compose_config(
        "data=folder",
        f"data.root={root}",
        "data.image_size=28",
        "data.channels=1",
        "data.stream=true",
        f"data.workers={workers}",
        "data.augment.crop_scale=null",
        "data.val_fraction=0.001",
        "data.test_fraction=0.001",
    )
    split = load_dataset(cfg.data).train
    count = 0
    for batch, _ in StreamLoader(split, data_mesh()).train_batches(256, seed=0, epoch=1):
        batch.block_until_ready()
        count += batch.shape[0]
    print(
        json.dumps(
            {"files": len(split), "streamed": count, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        )
    )


def link_tree(small: Path, large: Path, count: int) -> Path:
    """`count` hard links to the files of `small`, under new names, in the same class folders."""
    if large.is_dir() and sum(1 for _ in large.rglob("*.png")) >= count:
        return large
    files = sorted(small.rglob("*.png"))
    for i in range(count):
        src = files[i % len(files)]
        dst = large / src.parent.name / f"{i:07d}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            os.link(src, dst)
    return large


def memory(args) -> None:
    work = Path(args.work)
    small = write_fashion_pngs(work / "fashion_png", args.small)
    trees = {
        args.small: link_tree(small, work / f"links_{args.small}", args.small),
        args.large: link_tree(small, work / f"links_{args.large}", args.large),
    }
    results = {}
    for n, root in trees.items():
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "memory-child", str(root), str(args.workers)], capture_output=True, text=True, check=True
        )
        results[n] = {**json.loads(out.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}
        print(n, json.dumps(results[n]), flush=True)
    small_rss, large_rss = results[args.small]["peak_rss_mib"], results[args.large]["peak_rss_mib"]
    results["large_over_small"] = large_rss / small_rss
    print(
        f"peak RSS {args.small} files: {small_rss:.0f} MiB, {args.large} files: {large_rss:.0f} MiB, "
        f"ratio {large_rss / small_rss:.3f}"
    )
    Path(args.out).write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--images", type=int, default=1024, help="images per measured pass")
    t.add_argument("--photos", type=int, default=2000, help="JPEG photographs written")
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--pngs", type=int, default=10000, help="Fashion-MNIST training images written as PNGs")
    t.add_argument("--skip-png", action="store_true", help="photographs only (no Fashion-MNIST PNG tree)")
    t.add_argument("--work", default="/tmp/jaxdl_bench_input")
    t.add_argument("--out", default="experiments/results/bench_input_throughput.json")
    i = sub.add_parser("per-image")
    i.add_argument("--images", type=int, default=300, help="images decoded per pass")
    i.add_argument("--photos", type=int, default=2000, help="JPEG photographs written")
    i.add_argument("--repeats", type=int, default=3)
    i.add_argument("--work", default="/tmp/jaxdl_bench_input")
    m = sub.add_parser("memory")
    m.add_argument("--small", type=int, default=10000)
    m.add_argument("--large", type=int, default=100000)
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--work", default="/tmp/jaxdl_bench_input")
    m.add_argument("--out", default="experiments/results/bench_input_memory.json")
    c = sub.add_parser("memory-child")
    c.add_argument("root")
    c.add_argument("workers", type=int)
    args = parser.parse_args()
    if args.command == "throughput":
        throughput(args)
    elif args.command == "per-image":
        per_image(args)
    elif args.command == "memory":
        memory(args)
    else:
        memory_child(args.root, args.workers)


if __name__ == "__main__":
    main()
