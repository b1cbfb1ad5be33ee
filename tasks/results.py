"""The Prefect result cache as plain JSON: what the flows persist, and what they agree to read back.

No code from data: every persisted result (the cache) is plain JSON, written with `RESULT_SERIALIZER`
(Prefect's JSON serializer without its object hooks: no `__class__` entries, no imports on load), and
every task returns plain data (`netadapt_tasks.pipeline`: a proposal as `proposal_to_data`, a score
as a list). Prefect decodes a record with whatever serializer the record itself names, so the flows
read the cache through `JsonResultStorage` (`guard_result_storage`), which refuses any record that is
not exactly that (a pickle, garbage, another serializer or decoder): Prefect then finds no cache
entry and runs the task again. `read_result` reads a finished flow run's result the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import LocalFileSystem
from prefect.serializers import JSONSerializer

log = logging.getLogger("netadapt")


def encode_error(obj: Any) -> Any:
    """The JSON encoder's fallback: a failed run's exception as its type name and message (as
    Prefect's own encoder writes it); anything else that is not JSON fails loudly."""
    if isinstance(obj, BaseException):
        return {"__exc_type__": f"{type(obj).__module__}.{type(obj).__qualname__}", "message": str(obj)}
    raise TypeError(f"{type(obj).__name__} is not plain JSON data: a persisted result must be")


RESULT_SERIALIZER = JSONSerializer(jsonlib="json", object_encoder="netadapt_tasks.results.encode_error",
                                   object_decoder=None)


def trusted_record(content: bytes) -> bytes:
    """`content` if it is a result record that `RESULT_SERIALIZER` wrote (JSON metadata naming exactly
    that serializer, and a JSON payload); raises ValueError otherwise, before anything decodes it."""
    try:
        record = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a JSON result record") from None
    metadata = record.get("metadata") if isinstance(record, dict) else None
    serializer = metadata.get("serializer") if isinstance(metadata, dict) else None
    if serializer != RESULT_SERIALIZER.model_dump(mode="json"):
        raise ValueError(f"not a plain JSON result record (serializer {serializer!r:.200})")
    if not isinstance(record.get("result"), str):
        raise ValueError("result record without a JSON payload")
    try:
        json.loads(record["result"])
    except ValueError:
        raise ValueError("result record whose payload is not JSON") from None
    return content


class JsonResultStorage(LocalFileSystem):
    """Prefect's local result storage that reads only records `trusted_record` accepts. Anything else
    (a forged or foreign cache entry) reads as missing: a cache miss, and the task runs again."""

    _block_type_name = "NetAdapt JSON Result Storage"

    def _checked(self, path: str, content: bytes) -> bytes:
        try:
            return trusted_record(content)
        except ValueError as exc:
            log.warning("prefect cache: ignoring %s: %s", self._resolve_path(path), exc)
            raise

    async def aread_path(self, path: str) -> bytes:
        return self._checked(path, await super().aread_path(path))

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._checked(path, super().read_path(path, _sync=True))


def guard_result_storage() -> None:
    """Make the current flow run read its results and cache through `JsonResultStorage` (call it at
    the start of a flow: its tasks and subflows inherit the flow run's result store). Prefect only
    accepts server-side saved storage blocks as a task's `result_storage`, hence the swap here."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    store = getattr(context, "result_store", None)
    if store is None or isinstance(store.result_storage, JsonResultStorage):
        return
    if type(store.result_storage) is not LocalFileSystem or store.result_storage_block_id is not None:
        log.warning("prefect cache: result storage %s is not the local default: records are not checked",
                    type(store.result_storage).__name__)
        return
    guarded = JsonResultStorage(basepath=store.result_storage.basepath)
    context.result_store = store.model_copy(update={"result_storage": guarded})


def read_result(state) -> Any:
    """The result of a finished flow run whose state came from the API (another process ran it), as
    plain JSON, never through a deserializer a file could choose. Prefect writes a flow's result bare
    (the serializer recorded in the API's database); a task's is a record (`trusted_record`)."""
    from prefect.results import ResultRecordMetadata
    from prefect.settings import get_current_settings

    metadata = state.data
    if not (isinstance(metadata, ResultRecordMetadata) and metadata.storage_key and metadata.storage_block_id is None):
        return state.result(raise_on_failure=False)  # remote storage: Prefect's own reader
    if metadata.serializer.model_dump(mode="json") != RESULT_SERIALIZER.model_dump(mode="json"):
        raise ValueError(f"flow result {metadata.storage_key}: not written as plain JSON")
    key = Path(metadata.storage_key)
    path = key if key.is_absolute() else Path(get_current_settings().results.local_storage_path) / key
    content = path.read_bytes()
    value = json.loads(content)
    if isinstance(value, dict) and "metadata" in value and "result" in value:
        return json.loads(json.loads(trusted_record(content))["result"])
    return value
