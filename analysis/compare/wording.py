"""What the report says differently under each test of a family (``matching.Family.test``): the counts and
their columns, the tests' names, the method note's sentences and the findings' and design line's phrases.
Both tests' wordings stand side by side here, so the report, the findings and ``effects`` never branch on
the test themselves and the two stay parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class TestWording:
    """One test's counts, column names and phrases."""

    sizes: tuple[str, str]  # verdict columns of a test's (method, control) runs or seeds for endpoint {stat}
    # a count's text, .format(method's, control's): of ``sizes`` of the primary endpoint in the verdict and
    # resolution tables (``count_unmatched`` without a matched control); of {stat}_n, {stat}_n_control (the
    # runs or pairs with a value) per endpoint in the differences table
    count: str
    count_unmatched: str
    runs_header: str  # the count's column in the verdict and resolution tables
    endpoint_runs_header: str  # ... and in the differences table
    t_test: str  # the differences table's columns: the t-test's p, the exact test's p, the effect size
    exact_test: str
    effect_size: str
    floor_header: str  # the resolution table's column of the exact test's lowest p ("": no such floor)
    how: str  # the method note: how a method is set against its control
    test: str  # ... the test a detectable Δ is of
    spread: str  # ... the spread it is computed from
    floor: str  # ... and the exact test's floor ("" if none)
    too_few: str  # findings: why a comparison gets no test, .format(*sizes)
    over: str  # findings: what a test compares, .format(*sizes)
    variance_of: str  # the design line: what pass@1's variance is split in
    seeds: str  # ... its seeds, .format(per_method=, per_control=, n=, listed=)

    def sizes_of(self, row: pd.Series, stat: str) -> tuple:
        """(the method's, the control's) runs or paired seeds behind the test of ``stat``."""
        return tuple(row[c.format(stat=stat)] for c in self.sizes)


WELCH = TestWording(
    sizes=("{stat}_n", "{stat}_n_control"),
    count="{0:.0f}/{1:.0f}",
    count_unmatched="0",  # no runs are compared
    runs_header="runs (method/grpo)",
    endpoint_runs_header="runs (method/grpo)",
    t_test="Welch t",
    exact_test="permutation",
    effect_size="d",
    floor_header="",
    how=(
        "as two samples of runs: every run is evaluated on the same held-out prompts, and the method's runs "
        "are compared with all of its control's (one grpo cell per scenario serves every method there, so "
        "it holds more seeds). Δ = method mean − control mean; p from Welch's t-test (unequal variances), "
        "size-corrected: the largest chance, over the ratio of the two spreads, of a Welch p this small when "
        "nothing differs (Welch's own p is up to 1.5× too small at a family's level); the 95% interval is "
        "Welch's at the matching level; the permutation test's p beside it; d: Cohen's d with the pooled sd. "
    ),
    test="Welch's t-test",
    spread="the spreads of both cells' runs",
    floor="",
    too_few="fewer than two runs in it or its matched control; no test.",
    over="{0:.0f} runs against {1:.0f}",
    variance_of="pass@1's variance over runs",
    seeds="{per_method} seeds per method, {per_control} per grpo control",
)

PAIRED = TestWording(
    sizes=("pairs", "pairs"),  # the seeds shared with the control, whether or not an endpoint is finite
    count="{0:.0f}",
    count_unmatched="{0:.0f}",  # the seeds shared with the nearest grpo cell
    runs_header="paired seeds",
    endpoint_runs_header="pairs",
    t_test="paired t",
    exact_test="sign-flip",
    effect_size="d_z",
    floor_header="lowest possible sign-flip p",
    how=(
        "paired by seed (and by prompt: every run is evaluated on the same held-out prompts). "
        "Δ = method − control per paired seed; 95% paired t-interval; p from the paired t-test. "
    ),
    test="the paired t-test",
    spread="the spread of the paired differences",
    floor="The exact sign-flip test cannot go below 2/2ⁿ with n paired seeds (0.25 with 3). ",
    too_few="{0} seed shared with its matched control; no paired test.",
    over="{0} paired seeds",
    variance_of="pass@1's paired differences",
    seeds="{n} seeds ({listed})",
)


def wording(test: str | None) -> TestWording:
    """The wording of ``test``; any test but "welch" (or none named) is paired, the default."""
    return WELCH if test == "welch" else PAIRED
