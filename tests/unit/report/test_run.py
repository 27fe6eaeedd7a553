"""The run folder's CSV files."""

from __future__ import annotations

import pandas as pd

from engine.report.run import write_csv


def test_csv_floats_carry_no_noise_and_no_negative_zero(tmp_path):
    frame = pd.DataFrame(
        {
            "quantity": [0.17300000000000001, 0.255],
            "target": [-0.0, -1.0],
            "price": [107897.89409999999, 1e-9],
            "side": ["buy", "sell"],
            "bar": [3, 4],
        }
    )
    # One unit in the last place above 0.173, as a rounded-down quantity can come out.
    assert frame["quantity"][0] != 0.173
    path = tmp_path / "trades.csv"
    write_csv(frame, path)
    assert path.read_text().splitlines() == [
        "quantity,target,price,side,bar",
        "0.173,0,107897.8941,buy,3",
        "0.255,-1,1e-09,sell,4",
    ]
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(
        back, frame.assign(target=[0.0, -1.0]), rtol=1e-14, check_dtype=False
    )
