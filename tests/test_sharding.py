"""Rendezvous-hash sharding: pure hashing, the config setting and `synthmon check --shard`."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pytest

from synthmon.cli import main
from synthmon.cli.check import check
from synthmon.config.settings import load_settings
from synthmon.errors import ConfigError
from synthmon.execution import pair_key
from synthmon.scheduling.sharding import (
    Shard,
    owned,
    owner,
    owns,
    owns_pair,
    parse_shard,
    weight,
)
from tests.harness import write_config, write_journeys


def moved_fraction(keys: Iterable[str], before: int, after: int) -> float:
    """Which fraction of `keys` changes owner when the replica count changes."""
    keys = list(keys)
    if not keys:
        return 0.0
    moved = sum(1 for k in keys if owner(k, before) != owner(k, after))
    return moved / len(keys)


KEYS = [f"journey_{i:04d}@{t}" for i in range(2000) for t in ("production", "staging")]


class TestOwner:
    def test_every_pair_owned_by_exactly_one_shard(self) -> None:
        """Across all shards of N, each pair is run by one replica: none twice, none lost."""
        for count in (1, 2, 3, 5, 8):
            shards = [Shard(i, count) for i in range(count)]
            for key in KEYS[:500]:
                assert sum(owns(s, key) for s in shards) == 1

    def test_pairs_spread_evenly(self) -> None:
        """Each of 3 replicas gets about a third of the work."""
        counts = [sum(1 for k in KEYS if owner(k, 3) == i) for i in range(3)]
        for n in counts:
            assert abs(n / len(KEYS) - 1 / 3) < 0.03, counts

    def test_adding_a_replica_moves_about_one_over_n_plus_one(self) -> None:
        """Scaling N → N+1 moves ≈ 1/(N+1) of the pairs, not a reshuffle of everything."""
        for n in (2, 3, 4, 7):
            frac = moved_fraction(KEYS, n, n + 1)
            assert abs(frac - 1 / (n + 1)) < 0.03, (n, frac)

    def test_moved_pairs_only_go_to_the_new_replica(self) -> None:
        """Going 3 → 4, the old replicas keep what they had except what shard 3 takes."""
        for key in KEYS:
            before, after = owner(key, 3), owner(key, 4)
            assert after in (before, 3)

    def test_ownership_is_pinned(self) -> None:
        """Ownership never depends on Python's hash salt or version: an upgrade that
        changed the hash would silently move every pair (and its series) between replicas."""
        assert weight("browse_catalog@demo", 0) == 9701258791638407563
        assert [owner(f"j{i}@t", 5) for i in range(8)] == [2, 0, 2, 2, 3, 4, 1, 0]

    def test_owned_filters_a_mapping(self) -> None:
        """`owned` keeps only this shard's pairs and everything without sharding."""
        pairs = {k: k for k in KEYS[:300]}
        assert owned(pairs, None) == pairs
        parts = [owned(pairs, Shard(i, 3)) for i in range(3)]
        assert sum(len(p) for p in parts) == len(pairs)
        assert set().union(*parts) == set(pairs)

    def test_owns_pair_uses_the_daemons_pair_key(self) -> None:
        """`synthmon check --shard` and the daemon agree on which pairs a shard runs."""
        s = Shard(1, 3)
        for i in range(200):
            assert owns_pair(s, f"j{i}", "demo") == owns(s, pair_key(f"j{i}", "demo"))


class TestParseShard:
    def test_explicit(self) -> None:
        """'2/5' means shard 2 of 5."""
        assert parse_shard("2/5") == Shard(2, 5)
        assert str(parse_shard(" 0 / 3 ")) == "0/3"

    def test_auto_from_statefulset_pod_name(self) -> None:
        """'auto/3' on pod synthmon-eu-2 is shard 2 of 3."""
        assert parse_shard("auto/3", hostname="synthmon-eu-2") == Shard(2, 3)

    @pytest.mark.parametrize(
        ("spec", "hostname", "needle"),
        [
            ("5/5", None, "outside 0..4"),
            ("2", None, "expected INDEX/COUNT"),
            ("a/b", None, "expected INDEX/COUNT"),
            ("0/0", None, "at least 1"),
            ("auto/3", "laptop", "host name is 'laptop'"),
            ("auto/3", "synthmon-3", "more replicas than the shard count"),
        ],
    )
    def test_bad_specs_say_what_to_write(
        self, spec: str, hostname: str | None, needle: str
    ) -> None:
        """A wrong shard setting is refused with a message that says how to fix it."""
        with pytest.raises(ValueError, match=needle):
            parse_shard(spec, hostname=hostname)


class TestShardSetting:
    def test_config_file_and_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`shard` is read from the file and overridden by SYNTHMON_SHARD."""
        cfg = write_config(tmp_path / "s.toml", 'shard = "1/4"\n')
        assert load_settings(cfg).shard == "1/4"
        monkeypatch.setenv("SYNTHMON_SHARD", "auto/4")
        monkeypatch.setenv("HOSTNAME", "synthmon-3")
        assert load_settings(cfg).shard == "auto/4"

    def test_bad_shard_is_a_config_error_naming_the_field(self, tmp_path: Path) -> None:
        """shard = "4/4" fails at load with the file and field named."""
        cfg = write_config(tmp_path / "s.toml", 'shard = "4/4"\n')
        with pytest.raises(ConfigError, match=r"s\.toml: shard: .*outside 0\.\.3"):
            load_settings(cfg)


class TestCheckShard:
    def _setup(self, tmp_path: Path) -> Path:
        write_journeys(
            tmp_path / "journeys",
            {
                f"j{i}.py": f"""
                from synthmon import journey

                @journey(interval="1m")
                async def j{i}(ctx):
                    pass
                """
                for i in range(12)
            },
        )
        return write_config(
            tmp_path / "synthmon.toml",
            f"""
            journeys_dir = "{tmp_path / "journeys"}"
            [targets.a]
            base_url = "http://127.0.0.1:1"
            [targets.b]
            base_url = "http://127.0.0.1:2"
            """,
        )

    def test_shards_list_disjoint_sets_covering_everything(self, tmp_path: Path) -> None:
        """`synthmon check --shard i/3` for i = 0..2 lists every pair exactly once."""
        settings = load_settings(self._setup(tmp_path))
        seen: list[tuple[str, str]] = []
        for i in range(3):
            out = io.StringIO()
            assert check(settings, None, out=out, err=io.StringIO(), shard=Shard(i, 3)) == 0
            lines = out.getvalue().splitlines()
            for line in lines[1:]:
                if line.startswith("j"):
                    name, *_, targets, _file = line.split()
                    seen += [(name, t) for t in targets.split(",")]
            assert any(f"shard {i}/3 owns" in line for line in lines)
        assert sorted(seen) == sorted((f"j{i}", t) for i in range(12) for t in "ab")

    def test_command_line_flag(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`synthmon check --shard 1/2` prints how many pairs the shard owns; a bad one exits 2."""
        cfg = self._setup(tmp_path)
        assert main(["check", "--config", str(cfg), "--shard", "1/2"]) == 0
        assert "shard 1/2 owns" in capsys.readouterr().out
        with pytest.raises(SystemExit) as exc:
            main(["check", "--config", str(cfg), "--shard", "2/2"])
        assert exc.value.code == 2
        assert "outside 0..1" in capsys.readouterr().err
