"""Randomised sweeps: the sweep block, reproducible variants, exact confidence bounds, the
report, and resuming a sweep folder."""
from __future__ import annotations

import json
import random
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from sidewalk_robot import share_directory
from sidewalk_robot.system.distributions import (Distribution, draw_variant, parse_distribution,
                                                 parse_sweep)
from sidewalk_robot.system.metrics import RunSummary
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite_report import ScenarioResult
from sidewalk_robot.system.sweep import (RUNS_FILE, SweepPlan, draw_variants, load_outcomes,
                                         to_run)
from sidewalk_robot.system.sweep_report import (VariantOutcome, binomial_cdf, clopper_pearson,
                                                proportion, sweep_figures, write_sweep_outputs)
from helpers.summaries import delivered_summary

SCENARIO = {
    'name': 'swept', 'world': 'sidewalk_straight', 'seed': 5,
    'obstacles': [{'name': 'pole', 'shape': 'cylinder', 'radius': 0.1, 'length': 1.5,
                   'x': 8.0, 'y': 0.0, 'color': [0.5, 0.5, 0.5]},
                  {'name': 'crate', 'shape': 'box', 'size': [0.5, 0.5, 1.0], 'x': 12.0,
                   'y': 0.8}],
    'pedestrians': [{'name': 'walker', 'speed': 1.0, 'start_time': 0.0,
                     'waypoints': [[10.0, -1.6], [10.0, 1.6]]}],
    'faults': [{'type': 'lidar_dropout', 'start': 6.0, 'duration': 1.0}],
    'success': {'arrive': True},
    'sweep': {
        'obstacles.pole.x': {'uniform': [6.0, 10.0]},
        'obstacles.pole.radius': {'normal': [0.1, 0.05], 'min': 0.05, 'max': 0.15},
        'obstacles.pole.color': {'choice': [[1, 0, 0], [0, 0, 1]]},
        'obstacles.crate.size.2': {'uniform': [0.5, 1.5]},
        'pedestrians.walker.speed': {'uniform': [0.5, 1.5]},
        'pedestrians.walker.waypoints': {'choice': [[[10, -1.6], [10, 1.6]],
                                                     [[14, 1.6], [11, -1.6]]]},
        'faults.lidar_dropout.start': {'uniform': [2.0, 9.0]},
    },
}


def plan(samples: int = 10, seed: int = 3, document: dict | None = None) -> SweepPlan:
    return SweepPlan(yaml.safe_dump(document or SCENARIO, sort_keys=False), 'swept.yaml', seed,
                     samples)


# ----------------------------------------------------------------------- the sweep block

def test_a_scenario_file_declares_its_sweep(tmp_path: Path) -> None:
    path = tmp_path / 'swept.yaml'
    path.write_text(yaml.safe_dump(SCENARIO, sort_keys=False))
    scenario = load_scenario(path)
    assert [parameter.path for parameter in scenario.sweep] == list(SCENARIO['sweep'])
    assert scenario.sweep[1].distribution == Distribution('normal', (0.1, 0.05), 0.05, 0.15)
    assert scenario.sweep[0].numeric and not scenario.sweep[2].numeric


def test_the_shipped_sweeps_draw_valid_variants() -> None:
    files = sorted((share_directory() / 'config' / 'sweeps').glob('*.yaml'))
    assert files
    for path in files:
        assert load_scenario(path).sweep, path
        assert len(draw_variants(SweepPlan(path.read_text(), str(path), 1, 50), range(50))) == 50


@pytest.mark.parametrize('sweep, message', [
    ({'obstacles.pole.x': {'uniform': [3, 1]}}, 'low <= high'),
    ({'obstacles.pole.x': {'normal': [1, -1]}}, 'sigma >= 0'),
    ({'obstacles.pole.x': {'uniform': [1, 2], 'normal': [1, 1]}}, 'exactly one'),
    ({'obstacles.pole.x': {'gauss': [1, 2]}}, 'exactly one'),
    ({'obstacles.pole.x': 3.0}, 'expected a distribution'),
    ({'obstacles.pole.color': {'choice': []}}, 'non-empty'),
    ({'obstacles.pole.color': {'choice': [1, 2], 'min': 0}}, 'uniform and normal only'),
    ({'obstacles.pole.x': {'uniform': [1, 2], 'min': 3, 'max': 2}}, 'min must not exceed'),
    ({'obstacles.lamp.x': {'uniform': [1, 2]}}, "no entry 'lamp'"),
    ({'obstacles.7.x': {'uniform': [1, 2]}}, "no entry '7'"),
    ({'success.max_collisions': {'choice': [0, 1]}}, 'a sweep can vary'),
    ({'seed': {'choice': [0, 1]}}, 'a sweep can vary'),
    ({'pedestrians.walker.route.x': {'uniform': [1, 2]}}, "no 'pedestrians.walker.route'"),
    ({'obstacles.pole.x.y': {'uniform': [1, 2]}}, 'not a mapping or a list'),
    ({'obstacles..x': {'uniform': [1, 2]}}, 'empty part'),
    ([1, 2], 'map value paths'),
])
def test_bad_sweeps_name_the_problem(sweep, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sweep(sweep, SCENARIO, 'swept.yaml')


def test_entries_named_twice_must_be_picked_by_index() -> None:
    document = {**SCENARIO, 'faults': [{'type': 'lidar_dropout', 'start': 1.0},
                                       {'type': 'lidar_dropout', 'start': 9.0}]}
    with pytest.raises(ValueError, match='use the index'):
        parse_sweep({'faults.lidar_dropout.start': {'uniform': [1, 2]}}, document, 'x')
    assert parse_sweep({'faults.1.start': {'uniform': [1, 2]}}, document, 'x')


# ----------------------------------------------------------------------- drawing variants

def test_a_variant_depends_only_on_the_seed_and_its_index() -> None:
    parameters = parse_sweep(SCENARIO['sweep'], SCENARIO, 'x')
    alone = draw_variant(SCENARIO, parameters, 3, 17)
    in_a_big_sweep = [draw_variant(SCENARIO, parameters, 3, index) for index in range(40)][17]
    assert alone == in_a_big_sweep
    assert draw_variant(SCENARIO, parameters, 4, 17).values != alone.values
    assert draw_variant(SCENARIO, parameters, 3, 18).values != alone.values
    assert len({draw_variant(SCENARIO, parameters, 3, i).values['seed'] for i in range(40)}) == 40


def test_drawn_values_land_in_the_variant_document() -> None:
    parameters = parse_sweep(SCENARIO['sweep'], SCENARIO, 'x')
    variant = draw_variant(SCENARIO, parameters, 3, 2)
    document = variant.document
    pole, crate = document['obstacles']
    assert document['name'] == 'swept-0002' and 'sweep' not in document
    assert document['seed'] == variant.values['seed']
    assert pole['x'] == variant.values['obstacles.pole.x'] and 6.0 <= pole['x'] <= 10.0
    assert 0.05 <= pole['radius'] <= 0.15 and pole['color'] in ([1, 0, 0], [0, 0, 1])
    assert crate['size'][:2] == [0.5, 0.5] and 0.5 <= crate['size'][2] <= 1.5
    assert 2.0 <= document['faults'][0]['start'] <= 9.0
    assert SCENARIO['obstacles'][0]['x'] == 8.0, 'the nominal document is left alone'


def test_the_draws_follow_their_distributions() -> None:
    rng = random.Random(1)
    uniform = parse_distribution({'uniform': [2.0, 4.0]}, 'x')
    draws = [uniform.draw(rng) for _ in range(4000)]
    assert min(draws) >= 2.0 and max(draws) <= 4.0
    assert sum(draws) / len(draws) == pytest.approx(3.0, abs=0.05)
    normal = parse_distribution({'normal': [1.0, 0.5]}, 'x')
    draws = [normal.draw(rng) for _ in range(4000)]
    mean = sum(draws) / len(draws)
    deviation = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5
    assert mean == pytest.approx(1.0, abs=0.05) and deviation == pytest.approx(0.5, abs=0.05)
    clamped = parse_distribution({'normal': [0.0, 1.0], 'min': -0.5, 'max': 0.5}, 'x')
    draws = [clamped.draw(rng) for _ in range(500)]
    assert min(draws) == -0.5 and max(draws) == 0.5
    choice = parse_distribution({'choice': ['a', 'b', 'c']}, 'x')
    assert {choice.draw(rng) for _ in range(200)} == {'a', 'b', 'c'}
    assert parse_distribution({'normal': [2.0, 0.0]}, 'x').draw(rng) == 2.0


def test_an_impossible_draw_stops_the_sweep_before_any_run() -> None:
    document = {**SCENARIO, 'sweep': {'obstacles.pole.radius': {'normal': [0.0, 0.1]}}}
    with pytest.raises(ValueError, match=r'variant \d+: .*radius.*narrow the distribution'):
        draw_variants(plan(document=document), range(20))


def test_a_scenario_without_sweep_cannot_be_swept() -> None:
    document = {key: value for key, value in SCENARIO.items() if key != 'sweep'}
    with pytest.raises(ValueError, match='no sweep block'):
        plan(document=document).scenario()


# ----------------------------------------------------------------------- confidence bounds

@pytest.mark.parametrize('successes, trials, lower, upper', [
    (0, 10, 0.0, 0.3085),
    (10, 10, 0.6915, 1.0),
    (5, 10, 0.1871, 0.8129),
    (1, 1, 0.025, 1.0),
    (95, 100, 0.8872, 0.9836),
    (0, 300, 0.0, 0.01222),
])
def test_clopper_pearson_matches_known_values(successes: int, trials: int, lower: float,
                                              upper: float) -> None:
    assert clopper_pearson(successes, trials) == pytest.approx((lower, upper), abs=1.5e-4)


def test_the_bounds_are_exact_where_they_have_a_closed_form() -> None:
    for trials in (1, 7, 50, 400):
        assert clopper_pearson(0, trials)[1] == pytest.approx(1 - 0.025 ** (1 / trials),
                                                              rel=1e-9)
        assert clopper_pearson(trials, trials)[0] == pytest.approx(0.025 ** (1 / trials),
                                                                   rel=1e-9)
    assert binomial_cdf(3, 3, 0.5) == 1.0 and binomial_cdf(-1, 3, 0.5) == 0.0
    assert binomial_cdf(1, 3, 0.5) == pytest.approx(0.5)


def test_bounds_reject_impossible_counts() -> None:
    with pytest.raises(ValueError):
        clopper_pearson(4, 3)
    with pytest.raises(ValueError):
        clopper_pearson(0, 0)
    assert proportion(0, 0).text().startswith('-')


# ----------------------------------------------------------------------- the report

def summary(**changes) -> RunSummary:
    return delivered_summary(20.0, **changes)


def outcome(index: int, run_summary: RunSummary | None, passed: bool, x: float,
            run_dir: str = '-') -> VariantOutcome:
    failures = [] if passed else ['did not arrive' if run_summary else 'stack did not come up']
    result = ScenarioResult(f'swept-{index:04d}', 'lidar_dropout', 'd', passed, failures,
                            run_summary, run_dir, 40.0,
                            error=None if run_summary else 'stack did not come up')
    return VariantOutcome(index, {'seed': index, 'obstacles.pole.x': x,
                                  'obstacles.pole.color': [1, 0, 0]}, result)


def outcomes(tmp_path: Path) -> list[VariantOutcome]:
    failed_dir = tmp_path / 'runs' / 'swept-0002'
    (failed_dir / 'bag').mkdir(parents=True)
    (failed_dir / 'bag' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    return [outcome(0, summary(vetoes=1), True, 7.0),
            outcome(1, summary(min_clearance_m=0.1), True, 9.5),
            outcome(2, summary(arrived=False, collisions=1, collided_with=['pole'],
                               distance_m=5.0, min_clearance_m=0.0), False, 6.1,
                    str(failed_dir)),
            outcome(3, summary(arrived=False, distance_m=15.0, vetoes=2), False, 8.0),
            outcome(4, None, False, 8.8)]


def test_figures_count_judged_runs_only(tmp_path: Path) -> None:
    figures = sweep_figures(outcomes(tmp_path), samples=6, worst_shown=3)
    assert figures.judged == 4 and figures.not_judged == [4] and figures.missing == [5]
    assert (figures.arrived.successes, figures.arrived.trials) == (2, 4)
    assert (figures.collision_free.successes, figures.collision_free.trials) == (3, 4)
    assert (figures.passed.successes, figures.passed.trials) == (2, 4)
    assert (figures.arrived.lower, figures.arrived.upper) == clopper_pearson(2, 4)
    assert figures.vetoes == 3 and figures.distance_m == 60.0
    assert figures.vetoes_per_100m == pytest.approx(5.0)
    assert figures.worst == [2, 3, 1], 'collision first, then a failed delivery, then clearance'


def test_report_files_link_the_worst_runs_evidence(tmp_path: Path) -> None:
    parameters = parse_sweep({'obstacles.pole.x': {'uniform': [6, 10]},
                              'obstacles.pole.color': {'choice': [[1, 0, 0], [0, 0, 1]]}},
                             SCENARIO, 'x')
    paths = write_sweep_outputs(tmp_path, 'swept', 'swept.yaml', parameters, 3, 6,
                                outcomes(tmp_path))
    markdown = paths['report'].read_text()
    assert '| arrived | 2/4 = 50.0% [6.8%, 93.2%] |' in markdown
    assert '| collision-free | 3/4 = 75.0% [19.4%, 99.4%] |' in markdown
    assert '| vetoes per 100 m | 5.00 (3 in 60 m) |' in markdown
    assert '[bag](runs/swept-0002/bag)' in markdown
    assert 'variant 4: stack did not come up' in markdown
    assert 'sidewalk-robot sweep --resume' in markdown, 'one variant is still missing'
    data = json.loads(paths['json'].read_text())
    assert data['figures']['collision_free']['successes'] == 3
    assert [v['index'] for v in data['variants']] == [0, 1, 2, 3, 4]
    assert data['variants'][2]['evidence']['bag'] == 'runs/swept-0002/bag'
    image = matplotlib.image.imread(paths['figure'])
    assert image[..., :3].std() > 0.05, 'the plot is not blank'


def test_nothing_to_plot_without_judged_runs(tmp_path: Path) -> None:
    parameters = parse_sweep({'obstacles.pole.x': {'uniform': [6, 10]}}, SCENARIO, 'x')
    paths = write_sweep_outputs(tmp_path, 'swept', 'swept.yaml', parameters, 3, 1,
                                [outcome(0, None, False, 7.0)])
    assert 'figure' not in paths and '- (no judged run)' in paths['report'].read_text()


# ----------------------------------------------------------------------- resuming

def test_a_sweep_folder_tells_what_is_left_to_run(tmp_path: Path) -> None:
    lines = [json.dumps(o.to_dict()) for o in outcomes(tmp_path)[:4]]
    lines.insert(2, '{"index": 9, "values": {')  # cut short when the sweep was stopped
    lines.append(json.dumps(outcome(1, summary(min_clearance_m=0.2), True, 9.5).to_dict()))
    (tmp_path / RUNS_FILE).write_text('\n'.join(lines) + '\n')
    (tmp_path / RUNS_FILE).open('a').write(json.dumps(outcome(4, None, False, 8.8).to_dict()))
    done = load_outcomes(tmp_path)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert done[1].result.summary.min_clearance_m == 0.2, 'a variant run again counts once'
    assert done[2].result.summary.collided_with == ['pole']
    assert to_run(plan(samples=7), done) == [4, 5, 6], 'missing ones and the one never judged'
    assert load_outcomes(tmp_path / 'elsewhere') == {}


def test_sweep_command_line_mistakes_are_usage_errors(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from sidewalk_robot.cli import main
    from sidewalk_robot.system.sweep import save_plan

    plain = share_directory() / 'config' / 'scenarios' / '02_pole_in_path.yaml'
    assert main(['sweep', '--output', str(tmp_path)]) == 2
    assert 'give a scenario file with a sweep block' in capsys.readouterr().err
    assert main(['sweep', str(plain), '--output', str(tmp_path)]) == 2
    assert 'no sweep block' in capsys.readouterr().err
    save_plan(tmp_path, plan(samples=10))
    assert main(['sweep', '--resume', str(tmp_path), '--seed', '4']) == 2
    assert '--resume takes the scenario and the seed' in capsys.readouterr().err
    assert main(['sweep', '--resume', str(tmp_path), '--samples', '5']) == 2
    assert 'can only extend it' in capsys.readouterr().err
    assert main(['sweep', '--resume', str(tmp_path / 'nothing')]) == 2
    assert 'not a sweep folder' in capsys.readouterr().err
