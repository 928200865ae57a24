"""Worlds from gymnasium's toy-text tables: P reproduced exactly, terminated outcomes absorbing, reward kinds."""

import numpy as np
import pytest

import utiliscope as us
from utiliscope.worlds.toy_text import TERMINAL

gym = pytest.importorskip("gymnasium")

ENVS = ["FrozenLake-v1", "Taxi-v4", "CliffWalking-v1"]


def dense_from_table(P: dict, n_states: int) -> np.ndarray:
    """P[s, a, s'] summed outcome by outcome in listing order, terminated outcomes sent to the last state."""
    n_env, n_actions = len(P), len(P[0])
    dense = np.zeros((n_states, n_actions, n_states))
    for s in range(n_env):
        for a in range(n_actions):
            for p, s_next, _, done in P[s][a]:
                dense[s, a, n_states - 1 if done else s_next] += p
    dense[n_env:, :, n_env:] = 1.0
    return dense


@pytest.mark.parametrize("name", ENVS)
def test_from_gymnasium_reproduces_p_exactly(name):
    env = gym.make(name)
    world = us.worlds.from_gymnasium(env, gamma=0.95)
    P = env.unwrapped.P
    assert world.n_states == len(P) + 1 and world.state_names[-1] == TERMINAL
    assert world.n_actions == env.action_space.n
    np.testing.assert_array_equal(world.transitions, dense_from_table(P, world.n_states))
    np.testing.assert_array_equal(world.start[:-1], env.unwrapped.initial_state_distrib)
    assert world.start[-1] == 0


@pytest.mark.parametrize("name", ENVS)
def test_reward_features_span_the_environments_reward(name):
    env = gym.make(name)
    world = us.worlds.from_gymnasium(env)
    values = np.array([float(n.removeprefix("reward=")) for n in world.feature_names])
    reward = us.worlds.gymnasium_reward(env)
    np.testing.assert_allclose(world.features @ values, reward, atol=1e-12)
    np.testing.assert_allclose(world.features[:-1].sum(axis=-1), 1.0, atol=1e-12)  # one kind per outcome
    assert not world.features[-1].any() and not reward[-1].any()  # nothing is received once terminated


def test_values_match_discounted_returns_in_the_environment():
    """The optimal policy's value in the world equals its mean discounted return in gymnasium (within 4 SE)."""
    env, gamma = gym.make("FrozenLake-v1", max_episode_steps=400), 0.9  # γ^400 is far below the error
    world = us.worlds.from_gymnasium(env, gamma=gamma)
    reward = us.worlds.gymnasium_reward(env)
    policy = us.agents.Optimal(reward).policy(world)
    rng = np.random.default_rng(3)
    returns = []
    for i in range(3000):
        state, _ = env.reset(seed=int(rng.integers(2**31)) if i == 0 else None)
        total, discount = 0.0, 1.0
        for _ in range(400):
            state, r, terminated, truncated, _ = env.step(int(rng.choice(4, p=policy[state])))
            total, discount = total + discount * r, discount * gamma
            if terminated or truncated:
                break
        returns.append(total)
    returns = np.array(returns)
    value = us.evaluate(world, policy, reward)
    assert value > 0.05
    assert abs(returns.mean() - value) < 4 * returns.std() / np.sqrt(returns.size)


def test_from_gymnasium_refuses_an_environment_without_a_table():
    with pytest.raises(TypeError, match="no transition table P"):
        us.worlds.from_gymnasium(gym.make("CartPole-v1"))


def test_demonstrations_recorded_in_the_environment_match_the_world():
    env = gym.make("FrozenLake-v1")
    world = us.worlds.from_gymnasium(env)
    policy = us.agents.Boltzmann(us.worlds.gymnasium_reward(env), beta=20.0).policy(world)
    demos = us.Demonstrations.from_gymnasium(env, policy, n_episodes=50, horizon=30, seed=1)
    again = us.Demonstrations.from_gymnasium(env, policy, n_episodes=50, horizon=30, seed=1)
    np.testing.assert_array_equal(demos.counts, again.counts)
    assert demos.counts.shape == (world.n_states, world.n_actions) and demos.n_trajectories == 50
    assert not demos.counts[-1].any()  # episodes end on termination: the absorbing state is never recorded
    for trajectory in demos.trajectories:  # every recorded step is possible in the world
        s, a = trajectory.states, trajectory.actions
        assert (world.transitions[s[:-1], a[:-1], s[1:]] > 0).all()


@pytest.mark.slow
# monte_carlo g at M = 300 cannot resolve this agent's g (its g′ is itself a saturated monte_carlo estimate) and
# says so twice; the importance reference over Taxi takes minutes. The test checks the gymnasium path, not g.
@pytest.mark.filterwarnings("ignore::utiliscope.models.g_methods.GSaturationWarning")
@pytest.mark.filterwarnings("ignore::utiliscope.models.g_methods.GAccuracyWarning")
def test_taxi_fits_from_demonstrations_recorded_in_gymnasium():
    """Taxi (501 states with the absorbing one, 6 actions, sparse): a Boltzmann operator's recorded episodes move
    the posterior toward its utility (monte_carlo g: the importance reference is too costly here)."""
    env = gym.make("Taxi-v4")
    world = us.worlds.from_gymnasium(env)
    assert world.n_states == 501 and not isinstance(world.transitions, np.ndarray)
    library = us.priors.UtilityLibrary.from_features(world.features, feature_names=world.feature_names)
    truth = library.names.index("-reward=-10+reward=20")
    agent = us.agents.Boltzmann(library.reward_table(world.n_actions)[truth], beta=4.0)
    demos = us.Demonstrations.from_gymnasium(env, agent.policy(world), n_episodes=100, horizon=50, seed=0)
    g_star = agent.true_intelligence(world, method="monte_carlo", n_samples=300)
    likelihood = us.likelihoods.AsymmetricLaplace(observed=round(g_star, 1))
    scope = us.Utiliscope(
        world, us.WorldModel.from_demonstrations(demos), library, likelihood, g_method="monte_carlo", n_samples=300
    )
    idata = scope.fit(seed=0, progressbar=False, target_mcse=0.01)
    assert us.diagnostics.check(idata).ok
    assert scope.utility_posterior(idata).values[truth] > 4 * library.prior[truth]
