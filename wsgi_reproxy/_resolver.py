"""Placeholder: the resolver lands with issue 2."""

from __future__ import annotations


class Config:
    pass


def load_config() -> None:
    raise NotImplementedError


def parse_config() -> None:
    raise NotImplementedError
