"""The data -> model -> task contract (leedl_cli.contract): what a data module provides, what a model and a task
need, wired by run.py and refused before anything is built when they do not match."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from leedl_cli.contract import (
    ContractError,
    Positive,
    Probability,
    Provided,
    Range,
    contract_problems,
    needs,
    offered,
    ranges_of,
    spec_type,
    wire,
)


@dataclass(frozen=True)
class ToySpec:
    num_classes: int
    in_channels: int
    tokenizer: object = offered(default=None)


class ToyData:
    def provides(self) -> ToySpec:
        return ToySpec(num_classes=3, in_channels=2)


class ToyModel:
    def __init__(self, num_classes: Provided[int], in_channels: Provided[int] = 1, width: int = 8) -> None:
        self.num_classes, self.in_channels, self.width = num_classes, in_channels, width


class ToyTask:
    def __init__(self, model, optimizer=None, scheduler=None, run_dir=None, num_classes: Provided[int] = 0) -> None:
        self.num_classes = num_classes


class NeedsVocab:
    def __init__(self, vocab_size: Provided[int]) -> None:
        pass


class Plain:
    def __init__(self, model=None, optimizer=None, scheduler=None, run_dir=None) -> None:
        pass


def test_needs_and_spec_come_from_the_signatures():
    assert needs(ToyModel) == {"num_classes": int, "in_channels": int}
    assert needs(ToyTask) == {"num_classes": int}
    assert spec_type(ToyData) is ToySpec


def test_wire_passes_exactly_the_declared_values():
    model_kwargs, task_kwargs = wire(ToyData().provides(), ToyModel, ToyTask)
    assert model_kwargs == {"num_classes": 3, "in_channels": 2}
    assert task_kwargs == {"num_classes": 3}
    model = ToyModel(**model_kwargs)
    assert (model.num_classes, model.in_channels, model.width) == (3, 2, 8)


def test_a_matching_contract_has_no_problem():
    assert contract_problems(ToyData, ToyModel, ToyTask, "toy", "toy") == []


def test_a_needed_key_nobody_provides_is_named():
    found = contract_problems(ToyData, NeedsVocab, Plain, "needs_vocab", "toy")
    assert any(p.startswith("model.vocab_size: model=needs_vocab needs 'vocab_size'") for p in found), found


def test_a_provided_key_nobody_uses_is_named_unless_offered():
    class OnlyClasses:
        def __init__(self, num_classes: Provided[int]) -> None:
            pass

    found = contract_problems(ToyData, OnlyClasses, Plain, "m", "t")
    assert found == ["task.data: the data of task=t (ToySpec) provides 'in_channels', which neither model=m nor "
                     "task t uses"]   # tokenizer is offered(): it may go unused


def test_a_provided_value_set_in_the_config_is_refused():
    found = contract_problems(ToyData, ToyModel, ToyTask, "toy", "toy", model_set=["num_classes"])
    assert any("model.num_classes: provided by the data" in p for p in found), found


def test_provides_must_return_a_dataclass():
    class Bad:
        def provides(self) -> dict:
            return {}

    with pytest.raises(ContractError):
        spec_type(Bad)


def test_ranges_attach_to_parameters():
    assert ranges_of(Annotated[float, Probability]) == [Probability]
    assert ranges_of(Annotated[float, Positive] | None) == [Positive]
    assert Range(1, also=(-1,)).holds(-1) and not Range(1, also=(-1,)).holds(0)
    assert not Positive.holds(0.0) and Positive.holds(1e-9) and not Positive.holds(float("nan"))


# every shipped (task, model) pair keeps the contract: tests/test_configs.py composes each and asserts problems() == []
