"""mgreg: the Python client of the mgreg registry of TensorFlow checkpoints and MetaGraphs.

    import mgreg
    c = mgreg.Client()                       # $MGREG_SERVER, $MGREG_TOKEN
    c.push("resnet", saver.save(sess, "train/model.ckpt", global_step=step))
    prefix = c.restore("resnet", "/serving", clear_devices=True)

See python/README.md for every call.
"""

from . import errors
from .client import Client
from .errors import (AbortedError, AlreadyExistsError, CancelledError, DataLossError,
                     DeadlineExceededError, FailedPreconditionError, InternalError,
                     InvalidArgumentError, MgregError, NotFoundError, OutOfRangeError,
                     PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError,
                     UnavailableError, UnimplementedError, UnknownError)
from .manager import CheckpointManager, wrap
from .types import Checkpoint, Event, FileInfo, Model, ModelSummary, PushStats, TensorInfo
from .types import UploadStatus
from ._push import UploadSession
from .watch import Watch

__version__ = "0.1.0"
__all__ = ["Client", "CheckpointManager", "wrap", "Watch", "UploadSession", "errors",
           "Checkpoint", "Event", "FileInfo", "Model", "ModelSummary", "PushStats",
           "TensorInfo", "UploadStatus"] + [n for n in errors.__all__ if n.endswith("Error")]
