"""The run's terminal table: Hits rows always, fusion rows when the run has them, a dash for a missing value."""

from harness.tables import format_round_table


def test_fusion_rows_are_printed_when_present_and_missing_values_are_dashes():
    metrics = {"Hits@1": [0.0, 50.0], "Hits@5": [50.0, 50.0], "Hits@10": [50.0, 100.0],
               "Degradation": [0.0, 25.0], "RankDrop": [None, 3.5], "dialogues": 2}
    lines = format_round_table(metrics).splitlines()
    assert lines[0].split() == ["metric", "r0", "r1"]
    assert [line.split()[0] for line in lines[1:]] == ["Hits@1", "Hits@5", "Hits@10", "Degradation", "RankDrop"]
    assert lines[-1].split() == ["RankDrop", "-", "3.50"]
    assert format_round_table({"Hits@10": [1.0]}).splitlines()[1].split() == ["Hits@10", "1.00"]
