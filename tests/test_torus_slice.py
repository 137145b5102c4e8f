"""A TPU run lies on the published slice its devices are provisioned as (scale_up.slice_shapes):
a v5e-8 is a 2x4 mesh, not a 1x8 line of the 16x16 pod; only dimensions a slice spans whole
wrap around."""

from __future__ import annotations

import pytest

from simulator.loading import scenario_from_dict
from simulator.perf.collectives import collective_time
from simulator.perf.ops import Group
from simulator.profiles.catalog import hardware_dir, load_hardware
from simulator.profiles.torus_slice import on_slice, slice_for, slice_wraps
from tests.conftest import assert_clean_error, run_cli

GB = 1e9
S = 64e6  # an all-reduce buffer of 64 MB


def _all_reduce(hw, k: int) -> float:
    return collective_time(hw, "all_reduce", S, Group(k)).time_s


def test_a_v5e_8_all_reduce_runs_on_a_2x4_mesh_not_a_1x8_line():
    # v5e: 400 GB/s ICI both ways = 200 GB/s one way, x 0.80 collective efficiency = 160;
    # over 2 dims x 2 directions each direction of one link carries 40 GB/s.
    pod = load_hardware("tpu-v5e")
    v5e8 = on_slice(pod, 8)
    assert v5e8.scale_up.slice == (2, 4)
    alpha = 2e-6  # the profile's hop latency
    bytes_per_rank = 2 * 7 / 8 * S  # ring all-reduce, 8 ranks
    # pod (no slice): the 8 ranks are a 1x8 line of a 16-chip row, no wraparound:
    # 2 x 40 x 7/8 = 70 GB/s; 2 passes x 7 steps of latency
    assert _all_reduce(pod, 8) == pytest.approx(bytes_per_rank / (70 * GB) + 2 * 7 * alpha)
    # 2x4 slice, neither dimension the pod's 16: a line of 2 (2 x 40 x 1/2 = 40 GB/s) and a
    # line of 4 (2 x 40 x 3/4 = 60 GB/s), 100 GB/s together; 2 passes x (1 + 3) steps
    assert _all_reduce(v5e8, 8) == pytest.approx(bytes_per_rank / (100 * GB) + 2 * 4 * alpha)


def test_a_full_pod_wraps_around_as_before():
    # 256 chips are the whole 16x16 torus: both dimensions wrap, each ring 2 x 2 x 40 GB/s
    # = 80 GB/s (v6e: 80 x 2), 160 GB/s together; the pod's pricing is unchanged
    for hw_id, per_dim in (("tpu-v5e", 80 * GB), ("tpu-v6e", 160 * GB)):
        pod = load_hardware(hw_id)
        full = on_slice(pod, 256)
        assert full.scale_up.slice == (16, 16)
        expected = 2 * 255 / 256 * S / (2 * per_dim) + 2 * 30 * 2e-6
        assert _all_reduce(full, 256) == pytest.approx(expected)
        assert _all_reduce(full, 256) == _all_reduce(pod, 256)


def test_a_run_gets_the_smallest_slice_holding_it():
    up = load_hardware("tpu-v5e").scale_up
    assert [slice_for(up, n) for n in (1, 3, 8, 9, 32, 200, 256)] == [
        (1, 1), (2, 2), (2, 4), (4, 4), (4, 8), (16, 16), (16, 16)]
    assert slice_for(up, 257) is None  # more than a pod: slices over the DCN
    # v5p (MaxText's topology list): 8 chips are a 2x2x2, 64 a 4x4x4; 200 chips get the
    # next listed shape, 4x8x8 (256); more than the 16x16x24 torus: no slice
    v5p = load_hardware("tpu-v5p").scale_up
    assert [slice_for(v5p, n) for n in (4, 8, 64, 200, 512, 2048)] == [
        (2, 2, 1), (2, 2, 2), (4, 4, 4), (4, 8, 8), (8, 8, 8), (8, 16, 16)]
    assert slice_for(v5p, 6145) is None


def test_a_scenario_records_its_slice():
    def run_on(n: int):
        return scenario_from_dict({
            "name": "s", "hardware": "tpu-v5e", "cluster": {"accelerators": n},
            "model": "llama3.1-8b",
            "workload": {"kind": "inference", "parallelism": {"tp": 8},
                         "arrivals": {"process": "offline", "requests": 10},
                         "prompt_tokens": 100, "output_tokens": 10}})
    assert run_on(8).hardware.scale_up.slice == (2, 4)
    assert run_on(32).hardware.scale_up.slice == (4, 8)


def test_v5p_slices_of_whole_4x4x4_cubes_wrap_along_every_dimension():
    # v5p: 1,200 GB/s ICI both ways = 600 one way, x 0.80 = 480 GB/s; over 3 dims x 2
    # directions each direction of one link carries 80 GB/s.
    alpha = 2e-6
    bytes_per_rank = 2 * 63 / 64 * S  # ring all-reduce, 64 ranks
    cube = on_slice(load_hardware("tpu-v5p"), 64)
    assert slice_wraps(cube.scale_up) == ((4, 4, 4), (True, True, True))
    # three wrapped rings of 4: 3 x 2 x 2 x 80 = 480 GB/s; 2 passes x (3 + 3 + 3) steps
    assert _all_reduce(cube, 64) == pytest.approx(bytes_per_rank / (480 * GB) + 18 * alpha)
    # without the block rule a 4x4x4 of the 16x16x24 torus would be three lines of 4:
    # 3 x 2 x 80 x 3/4 = 360 GB/s
    open_cube = cube.model_copy(update={"scale_up": cube.scale_up.model_copy(
        update={"slice_wrap_block": None})})
    assert _all_reduce(open_cube, 64) == pytest.approx(bytes_per_rank / (360 * GB) + 18 * alpha)
    # a 2x4x4 is not made of whole cubes: no dimension wraps (MaxText: v5p-64 has no wrap)
    half = on_slice(load_hardware("tpu-v5p"), 32)
    assert slice_wraps(half.scale_up) == ((2, 4, 4), (False, False, False))
    assert slice_wraps(on_slice(load_hardware("tpu-v5p"), 2048).scale_up)[1] == (True,) * 3


def test_a_wrap_block_needs_one_entry_per_torus_dimension(tmp_path):
    text = (hardware_dir() / "tpu-v5p.yaml").read_text()
    start = text.index("  slice_wrap_block:")
    end = text.index("\n", start)
    path = tmp_path / "my-tpu.yaml"
    path.write_text(text[:start] + "  slice_wrap_block: {value: [4, 4], source: test}" + text[end:])
    result = run_cli("profiles", "show", str(path))
    assert_clean_error(result, "my-tpu.yaml", "scale_up",
                       "slice_wrap_block needs torus_dims and one entry per torus dimension")
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("edit", "message"), [
    ("slice_shapes: {value: [[2, 2], [2, 32]], source: test}", "slice shape [2, 32] does not fit"),
    ("slice_shapes: {value: [[2, 4], [2, 2]], source: test}", "distinct device counts, smallest"),
    ("slice_shapes: {value: [[2, 2]], source: test}\n  slice: [2, 4]",
     "slice [2, 4] is not one of slice_shapes"),
])
def test_bad_slice_shapes_are_one_line(tmp_path, edit, message):
    text = (hardware_dir() / "tpu-v5e.yaml").read_text()
    start = text.index("  slice_shapes:")
    end = text.index("\n", start)
    path = tmp_path / "my-tpu.yaml"
    path.write_text(text[:start] + "  " + edit + text[end:])
    result = run_cli("profiles", "show", str(path))
    assert_clean_error(result, "my-tpu.yaml", "scale_up", message)
    assert len(result.err.strip().splitlines()) == 1


def test_slice_shapes_need_the_torus_they_are_cut_from(tmp_path):
    text = (hardware_dir() / "tpu-v5e.yaml").read_text()
    assert "  torus_dims: [16, 16]\n" in text
    path = tmp_path / "my-tpu.yaml"
    path.write_text(text.replace("  torus_dims: [16, 16]\n", "", 1))
    result = run_cli("profiles", "show", str(path))
    assert_clean_error(result, "my-tpu.yaml", "slice_shapes needs torus_dims")
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("edit", "message"), [
    # a 16x8 torus holds 128 chips, the profile's domain is 256
    (("  torus_dims: [16, 16]\n", "  torus_dims: [16, 8]\n"),
     "torus_dims [16, 8] hold 128 devices but domain_size is 256"),
    (("  topology: torus\n", "  topology: mesh\n"),
     "torus_dims is only meaningful with topology: torus"),
])
def test_a_torus_shape_that_contradicts_the_domain_is_one_line(tmp_path, edit, message):
    text = (hardware_dir() / "tpu-v5e.yaml").read_text()
    old, new = edit
    assert old in text
    path = tmp_path / "my-tpu.yaml"
    path.write_text(text.replace(old, new, 1))
    result = run_cli("profiles", "show", str(path))
    assert_clean_error(result, "my-tpu.yaml", "scale_up", message)
    assert len(result.err.strip().splitlines()) == 1
