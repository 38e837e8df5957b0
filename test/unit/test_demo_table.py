"""The demo's summary table keeps its columns aligned whatever the variant names."""

from __future__ import annotations

from ad_perception.ros.demo_cli import _print_table


def test_columns_stay_aligned_for_long_variant_names(capsys):
    row = {"camera_map50": 0.8, "fused_map_bev": 0.7, "e2e_p50_ms": 40.0, "e2e_p99_ms": 50.0,
           "frames_out": 50, "frames_in": 50, "speedup": 3.0}
    rows = [{"variant": "baseline", **row, "speedup": 1.0},
            {"variant": "prune50_depth_int8", **row}, {"variant": "int8", **row,
                                                       "camera_map50": None}]
    _print_table(rows, "live")
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1, lines
    assert lines[0].startswith("variant ") and "e2e p50" in lines[0]
    assert lines[2].startswith("prune50_depth_int8 ") and lines[3].split()[1] == "-"
