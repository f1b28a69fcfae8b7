"""PyTorch datasets over streams: ``combinators.torch`` is `combinators.integrations.torch`.

The module itself, not a copy of its names: ``combinators.torch is
combinators.integrations.torch``.
"""

import sys

from combinators.integrations import torch as _torch

sys.modules[__name__] = _torch
