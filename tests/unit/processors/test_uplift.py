"""The holdout: deterministic, uniform, and the booster's own."""

from __future__ import annotations

import random
from decimal import Decimal, localcontext
from fractions import Fraction
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booster.processors.uplift import GroupCounts, group_size_for, holdout_of, uplift


@given(st.text(min_size=1), st.text(min_size=1), st.integers(0, 50))
def test_the_holdout_is_a_function_of_booster_and_contact(booster_id: str, contact_id: str, percent: int) -> None:
    assert holdout_of(booster_id, percent)(contact_id) == holdout_of(booster_id, percent)(contact_id)
    if percent == 0:
        assert not holdout_of(booster_id, percent)(contact_id)


def test_a_larger_holdout_holds_out_every_contact_a_smaller_one_did() -> None:
    contacts = [f"contact-{i}" for i in range(5000)]
    smaller, larger = holdout_of("c1:booster", 10), holdout_of("c1:booster", 20)
    assert all(larger(c) for c in contacts if smaller(c))


def test_the_holdout_is_uniform_and_independent_of_the_boosters() -> None:
    n = 40_000
    contacts = [f"contact-{i:07d}" for i in range(n)]
    for percent in (1, 10, 25, 50):
        held = sum(map(holdout_of("c1:booster", percent), contacts))
        # within 5 standard deviations of the binomial's mean
        sd = (n * percent / 100 * (1 - percent / 100)) ** 0.5
        assert abs(held - n * percent / 100) < 5 * sd, (percent, held)
    first = {c for c in contacts if holdout_of("c1:booster", 50)(c)}
    second = {c for c in contacts if holdout_of("c2:booster", 50)(c)}
    both = len(first & second)
    assert abs(both - n / 4) < 5 * (n * 0.25 * 0.75) ** 0.5  # as two independent draws would overlap


# -- the statistics --------------------------------------------------------------------------------


def reference(nb: int, eb: int, nh: int, eh: int) -> tuple[float, float, float]:
    """The two-proportion Wald interval computed another way: exact rates, the quantile from the
    standard library, the square root in 40-digit decimals."""
    rb, rh = Fraction(eb, nb), Fraction(eh, nh)
    variance = rb * (1 - rb) / nb + rh * (1 - rh) / nh
    with localcontext() as ctx:
        ctx.prec = 40
        margin = Decimal(NormalDist().inv_cdf(0.975)) * (Decimal(variance.numerator) / variance.denominator).sqrt()
    difference = float(rb - rh)
    return difference, max(-1.0, difference - float(margin)), min(1.0, difference + float(margin))


@st.composite
def group_counts(draw: st.DrawFn) -> GroupCounts:
    nb, nh = draw(st.integers(1, 10**7)), draw(st.integers(1, 10**7))
    return GroupCounts(nb, draw(st.integers(0, nb)), nh, draw(st.integers(0, nh)))


@given(group_counts())
def test_the_difference_and_its_interval_are_the_reference_computations(counts: GroupCounts) -> None:
    u = uplift(counts)
    difference, low, high = reference(counts.boosted, counts.boosted_engaged, counts.held_out, counts.held_out_engaged)
    assert u.difference == pytest.approx(difference, abs=1e-12)
    assert u.difference_low == pytest.approx(low, abs=1e-9) and u.difference_high == pytest.approx(high, abs=1e-9)
    assert u.difference is not None and u.difference_low is not None and u.difference_high is not None
    assert u.difference_low <= u.difference <= u.difference_high
    assert u.extra_engagements == pytest.approx(difference * counts.boosted, rel=1e-9, abs=1e-6)
    assert u.extra_low == pytest.approx(u.difference_low * counts.boosted, rel=1e-9, abs=1e-6)


def test_a_worked_example() -> None:
    """60 of 100 boosted engaged, 50 of 100 held out: 0.10, from -0.0372 to 0.2372 (by hand:
    1.96 * sqrt(0.24/100 + 0.25/100) = 1.96 * 0.07); 10 extra engagements, -3.7 to 23.7."""
    u = uplift(GroupCounts(100, 60, 100, 50))
    assert (u.boosted_rate, u.held_out_rate) == (0.6, 0.5)
    assert round(u.difference or 0, 4) == 0.1
    assert (round(u.difference_low or 0, 4), round(u.difference_high or 0, 4)) == (-0.0372, 0.2372)
    assert (round(u.extra_low or 0, 1), round(u.extra_high or 0, 1)) == (-3.7, 23.7)


def test_without_a_held_out_group_there_is_no_difference_to_tell() -> None:
    u = uplift(GroupCounts(500, 40, 0, 0))
    assert u.boosted_rate == 0.08 and u.held_out_rate is None
    assert u.difference is u.difference_low is u.extra_engagements is u.detectable is None


def test_the_interval_covers_the_true_difference_95_times_in_100() -> None:
    """Simulated boosters with known engagement rates: the interval holds the true difference about as
    often as it says (a wrong variance, a pooled one or a one-sided quantile would miss this)."""
    rng = random.Random(12)
    trials, covered = 2000, 0
    for _ in range(trials):
        pb, ph = rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.6)
        nb, nh = rng.randint(800, 3000), rng.randint(300, 1500)
        eb = sum(rng.random() < pb for _ in range(nb))
        eh = sum(rng.random() < ph for _ in range(nh))
        u = uplift(GroupCounts(nb, eb, nh, eh))
        assert u.difference_low is not None and u.difference_high is not None
        covered += u.difference_low <= pb - ph <= u.difference_high
    assert 0.935 < covered / trials < 0.965


@pytest.mark.parametrize(("base", "difference"), [(0.1, 0.01), (0.2, 0.02), (0.05, 0.01), (0.3, 0.05)])
def test_the_group_size_for_a_difference_detects_about_that_difference(base: float, difference: float) -> None:
    n = group_size_for(base, difference)
    detectable = uplift(GroupCounts(n, round(n * (base + difference)), n, round(n * base))).detectable
    assert detectable is not None and abs(detectable - difference) < 0.06 * difference
    assert group_size_for(0.10, 0.01) == 14_749  # the textbook figure for 10 % -> 11 %, 80 % power, 5 % level
