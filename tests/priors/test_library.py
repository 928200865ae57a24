"""The utility library: its prior, its lookups, and the library of feature sums with its prefix-free code."""

import itertools
import json
import math

import numpy as np
import pytest

from utiliscope.priors import LinearUtility, UtilityLibrary, UtilityPrior

SEED = 7


def one_hot_colours(colours, n_colours):
    """features[s, k] = 1 when cell s has colour k; every cell has one colour."""
    return np.eye(n_colours)[colours]


FEATURE_SETS = {
    "one_hot_covering": one_hot_colours([0, 1, 2, 0, 1, 2, 2], 3),
    "one_hot_partial": np.vstack([one_hot_colours([0, 1, 2, 1], 3), np.zeros((2, 3))]),
    "random_state": np.random.default_rng(SEED).standard_normal((5, 4)),
    "random_state_action": np.random.default_rng(SEED + 1).standard_normal((3, 2, 3)),
    "with_constant_column": np.column_stack([np.ones(4), np.random.default_rng(SEED + 2).standard_normal((4, 2))]),
}


def hand_bits(n_terms, n_features, max_weight):
    """K of an n-term expression, written out: gamma(n+1) + log2 C(K, n) + n (1 + log2 W)."""
    gamma = 2 * math.floor(math.log2(n_terms + 1)) + 1
    return gamma + math.log2(math.comb(n_features, n_terms)) + n_terms * (1 + math.log2(max_weight))


def same_utility(r1, r2):
    """Equal up to c·r + d with c > 0: both constant, or both varying with correlation 1."""
    flat1, flat2 = np.ravel(r1), np.ravel(r2)
    varies1, varies2 = np.ptp(flat1) > 1e-9, np.ptp(flat2) > 1e-9
    if not (varies1 and varies2):
        return varies1 == varies2
    return np.corrcoef(flat1, flat2)[0, 1] > 1 - 1e-9


def brute_force_classes(features, max_terms, max_weight):
    """Affine classes of every weight vector with ≤ max_terms non-zero entries in [−W, W], with their least K."""
    n_features = features.shape[-1]
    classes = []  # [representative reward, least bits]
    for w in itertools.product(range(-max_weight, max_weight + 1), repeat=n_features):
        n_terms = sum(x != 0 for x in w)
        if n_terms > max_terms:
            continue
        reward, bits = features @ np.array(w, dtype=float), hand_bits(n_terms, n_features, max_weight)
        for entry in classes:
            if same_utility(entry[0], reward):
                entry[1] = min(entry[1], bits)
                break
        else:
            classes.append([reward, bits])
    return classes


# --- the prior ------------------------------------------------------------------------------------------------


def test_log_prior_is_normalised_two_to_minus_lambda_k():
    bits = np.array([1.0, 2.5, 4.0, 4.0])
    with pytest.warns(UserWarning, match="same utility"):  # over two states, every rising reward is one utility
        lib = UtilityLibrary(np.arange(8.0).reshape(4, 2) ** 2, bits, simplicity_weight=1.7)
    expected = 2.0 ** (-1.7 * bits) / np.sum(2.0 ** (-1.7 * bits))
    np.testing.assert_allclose(lib.prior, expected, rtol=1e-12)
    np.testing.assert_allclose(lib.log_prior, np.log(expected), rtol=0, atol=1e-12)
    assert abs(lib.prior.sum() - 1.0) < 1e-12


def test_normalisation_survives_long_descriptions():
    lib = UtilityLibrary(np.eye(3), [5000.0, 5001.0, 5003.0])
    np.testing.assert_allclose(lib.prior, np.array([8.0, 4.0, 1.0]) / 13.0, rtol=1e-12)


def test_zero_weight_is_uniform_and_larger_weights_favour_short_descriptions():
    lib = UtilityLibrary.from_features(FEATURE_SETS["random_state"])
    np.testing.assert_allclose(lib.with_simplicity_weight(0.0).prior, np.full(len(lib), 1 / len(lib)), rtol=1e-12)
    shortest = lib.description_bits == lib.description_bits.min()
    mass, mean_bits = [], []
    for lam in [0.0, 0.25, 0.5, 1.0, 2.0]:
        prior = lib.with_simplicity_weight(lam).prior
        mass.append(prior[shortest].sum())
        mean_bits.append(prior @ lib.description_bits)
    assert np.all(np.diff(mass) > 0)
    assert np.all(np.diff(mean_bits) < 0)


def test_with_simplicity_weight_leaves_the_original_alone():
    lib = UtilityLibrary(np.eye(2), [1.0, 3.0], names=["a", "b"], simplicity_weight=1.0)
    other = lib.with_simplicity_weight(0.5)
    assert (lib.simplicity_weight, other.simplicity_weight) == (1.0, 0.5)
    assert other.names == lib.names
    np.testing.assert_array_equal(other.rewards, lib.rewards)
    np.testing.assert_allclose(other.prior, [2**-0.5 / (2**-0.5 + 2**-1.5), 2**-1.5 / (2**-0.5 + 2**-1.5)])


def test_the_library_is_immutable():
    lib = UtilityLibrary(np.eye(2), [1.0, 1.0])
    with pytest.raises(AttributeError, match="immutable"):
        lib.simplicity_weight = 2.0
    for array in (lib.rewards, lib.description_bits, lib.log_prior, lib.prior):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0


def test_names_default_and_index():
    lib = UtilityLibrary(np.eye(3), [1, 1, 1])
    assert lib.names == ("U0", "U1", "U2")
    assert len(lib) == 3
    assert lib.index("U2") == 2
    with pytest.raises(ValueError, match="'nope' is not in the library"):
        lib.index("nope")


def test_reward_table_broadcasts_state_rewards():
    with pytest.warns(UserWarning, match="same utility"):
        state = UtilityLibrary([[1.0, 2.0], [3.0, 5.0]], [1, 1])
    table = state.reward_table(3)
    assert table.shape == (2, 2, 3)
    for a in range(3):
        np.testing.assert_array_equal(table[:, :, a], state.rewards)
    with pytest.warns(UserWarning, match="same utility"):
        action = UtilityLibrary(np.arange(12.0).reshape(2, 2, 3), [1, 1])
    np.testing.assert_array_equal(action.reward_table(3), action.rewards)
    with pytest.raises(ValueError, match="n_actions is 2"):
        action.reward_table(2)


# --- constant and negated utilities ---------------------------------------------------------------------------


def test_constant_and_negation_lookups_in_a_given_library():
    rewards = [[1.0, 2.0, 4.0], [7.0, 7.0, 7.0], [0.0, -2.0, -6.0], [5.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    with pytest.warns(UserWarning, match="same utility"):  # two constants
        lib = UtilityLibrary(rewards, [2, 1, 2, 2, 1])
    assert lib.constant_index() == 1
    assert lib.negation_index(0) == 2  # −(1, 2, 4) = 0.5·(0, −2, −6) − 1
    assert lib.negation_index(2) == 0
    assert lib.negation_index(3) is None
    assert lib.negation_index(1) == 1  # −const is a constant: the first one
    assert lib.negation_index(4) == 1
    assert UtilityLibrary(np.eye(2), [1, 1]).constant_index() is None
    with pytest.raises(ValueError, match=r"i is 5; it must be an integer index in \[0, 5\)"):
        lib.negation_index(5)


def test_constant_up_to_relative_tolerance():
    assert UtilityLibrary([[1.0, 1.0 + 1e-6], [1e6, 1e6 + 1e-7]], [1, 1]).constant_index() == 1
    assert UtilityLibrary([[1.0, 1.0 + 1e-6]], [1]).constant_index() is None


def test_negations_in_a_feature_library():
    lib = UtilityLibrary.from_features(FEATURE_SETS["random_state"], feature_names=["a", "b", "c", "d"])
    assert lib.negation_index(lib.index("+a")) == lib.index("-a")
    assert lib.negation_index(lib.index("+a-2*c")) == lib.index("-a+2*c")
    assert lib.negation_index(lib.constant_index()) == lib.constant_index() == lib.index("const")


# --- the library of feature sums ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
@pytest.mark.parametrize(("max_terms", "max_weight"), [(1, 1), (2, 2), (3, 1)])
def test_kraft_inequality_and_constant_shortest(name, max_terms, max_weight):
    lib = UtilityLibrary.from_features(FEATURE_SETS[name], max_terms=max_terms, max_weight=max_weight)
    assert np.sum(2.0**-lib.description_bits) <= 1.0
    const = lib.constant_index()
    assert const is not None and lib.names[const] == "const"
    others = np.delete(lib.description_bits, const)
    assert lib.description_bits[const] == 1.0 and np.all(others > 1.0)


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_no_two_entries_are_the_same_utility(name):
    lib = UtilityLibrary.from_features(FEATURE_SETS[name], max_terms=2, max_weight=2)
    for i, j in itertools.combinations(range(len(lib)), 2):
        assert not same_utility(lib.rewards[i], lib.rewards[j]), (lib.names[i], lib.names[j])


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_entries_match_a_brute_force_enumeration(name):
    features = FEATURE_SETS[name]
    lib = UtilityLibrary.from_features(features, max_terms=2, max_weight=2)
    classes = brute_force_classes(features, max_terms=2, max_weight=2)
    assert len(lib) == len(classes)
    for reward, bits in classes:
        (match,) = [i for i in range(len(lib)) if same_utility(lib.rewards[i], reward)]
        assert lib.description_bits[match] == pytest.approx(bits, abs=1e-12)


def test_generic_features_keep_every_direction():
    # 3 generic state features over 5 states: the only coincidences are the proportional weight vectors.
    lib = UtilityLibrary.from_features(FEATURE_SETS["random_state"][:, :3], max_terms=2, max_weight=2)
    # const, 3 × (±1), 3 pairs × the 12 directions (w1, w2) of {±1, ±2}² up to a positive factor.
    assert len(lib) == 1 + 3 * 2 + 3 * 12


def test_two_colours_covering_every_cell():
    # b = 1 − a: "+b" is "-a" shifted, "+a-b" is 2a − 1, "+a+b" is the constant.
    lib = UtilityLibrary.from_features(one_hot_colours([0, 1, 1, 0], 2), feature_names=["a", "b"])
    assert lib.names == ("const", "+a", "-a")
    np.testing.assert_array_equal(lib.rewards, [[0, 0, 0, 0], [1, 0, 0, 1], [-1, 0, 0, -1]])


def test_description_bits_by_hand():
    lib = UtilityLibrary.from_features(FEATURE_SETS["random_state"][:, :3], max_terms=3, max_weight=2)
    assert lib.description_bits[lib.index("const")] == 1.0
    assert lib.description_bits[lib.index("+f1")] == pytest.approx(3 + math.log2(3) + 2)
    assert lib.description_bits[lib.index("-f0+2*f2")] == pytest.approx(3 + math.log2(3) + 4)
    assert lib.description_bits[lib.index("+f0-f1+2*f2")] == pytest.approx(5 + 0 + 6)
    assert "+2*f1" not in lib.names  # the same utility as "+f1", kept with the smaller weights


def test_state_action_features_give_state_action_rewards():
    features = FEATURE_SETS["random_state_action"]
    lib = UtilityLibrary.from_features(features, max_terms=1, max_weight=1, feature_names=["x", "y", "z"])
    assert lib.rewards.shape == (7, 3, 2)
    np.testing.assert_allclose(lib.rewards[lib.index("-y")], -features[:, :, 1])


def test_too_large_a_library_is_refused():
    with pytest.raises(ValueError, match=r"give 3121 utilities, more than max_size=1000; lower max_terms"):
        UtilityLibrary.from_features(np.random.default_rng(0).standard_normal((30, 20)), max_size=1000)


# --- saving ---------------------------------------------------------------------------------------------------


def test_dict_round_trip():
    lib = UtilityLibrary.from_features(FEATURE_SETS["random_state_action"], simplicity_weight=0.3)
    data = json.loads(json.dumps(lib.to_dict()))
    assert data["kind"] == "library"
    for back in (UtilityLibrary.from_dict(data), UtilityPrior.from_dict(data)):
        assert isinstance(back, UtilityLibrary)
        assert back.names == lib.names and back.simplicity_weight == 0.3
        np.testing.assert_array_equal(back.rewards, lib.rewards)
        np.testing.assert_array_equal(back.description_bits, lib.description_bits)
        np.testing.assert_array_equal(back.log_prior, lib.log_prior)


def test_from_dict_refuses_other_kinds_and_versions():
    data = UtilityLibrary(np.eye(2), [1, 1]).to_dict()
    message = r"data\['kind'\] is 'library'; LinearUtility.from_dict reads kind \['linear'\]"
    with pytest.raises(ValueError, match=message):
        LinearUtility.from_dict(data)
    with pytest.raises(ValueError, match=r"data\['version'\] is 99"):
        UtilityLibrary.from_dict({**data, "version": 99})


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rewards": np.zeros((0, 3)), "description_bits": []}, ValueError, "rewards is empty"),
        ({"rewards": np.zeros(3), "description_bits": [1, 1, 1]}, ValueError, "rewards must be 2-d or 3-d"),
        ({"rewards": [[0.0, np.nan]], "description_bits": [1]}, ValueError, r"rewards\[0, 1\] is nan"),
        ({"rewards": np.eye(2), "description_bits": [1]}, ValueError, "description_bits has 1 entries; it needs"),
        ({"rewards": np.eye(2), "description_bits": [1, -1]}, ValueError, r"description_bits\[1\] is -1.0"),
        ({"rewards": np.eye(2), "description_bits": [1, np.inf]}, ValueError, r"description_bits\[1\] is inf"),
        ({"rewards": np.eye(2), "description_bits": [1, 1], "names": ["a", "a"]}, ValueError, r"names\[1\] = 'a'"),
        ({"rewards": np.eye(2), "description_bits": [1, 1], "names": ["a"]}, ValueError, "names has 1 entries"),
        ({"rewards": np.eye(2), "description_bits": [1, 1], "simplicity_weight": -1}, ValueError, "simplicity_w"),
        ({"rewards": np.eye(2), "description_bits": [1, 1], "simplicity_weight": np.nan}, ValueError, "is nan"),
        ({"rewards": "abc", "description_bits": [1]}, TypeError, "rewards must be an array of numbers"),
    ],
)
def test_constructor_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        UtilityLibrary(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"features": np.ones(3)}, ValueError, "features must be 2-d or 3-d"),
        ({"features": np.ones((3, 0))}, ValueError, "at least one state and one feature"),
        ({"features": np.eye(2), "max_terms": -1}, ValueError, "max_terms is -1"),
        ({"features": np.eye(2), "max_weight": 0}, ValueError, "max_weight is 0"),
        ({"features": np.eye(2), "max_weight": 1.5}, TypeError, "max_weight must be an integer"),
        ({"features": np.eye(2), "feature_names": ["x"]}, ValueError, "feature_names has 1 entries"),
    ],
)
def test_from_features_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        UtilityLibrary.from_features(**kwargs)
