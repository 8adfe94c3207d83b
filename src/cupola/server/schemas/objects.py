"""The objects the resource routes answer (conversations, files, vector stores, containers,
models, agents, deployments, connections, toolboxes), as the SDKs parse them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, RootModel

from cupola.server.schemas.common import Item, OpenAIError, Page, ValueList


class ConversationObject(BaseModel):
    id: str
    object: Literal["conversation"]
    created_at: int
    metadata: dict[str, str]


# ---- files and vector stores -----------------------------------------------------------------


class FileObject(BaseModel):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"]
    expires_at: int | None
    status_details: str | None


class FileUpload(BaseModel):
    """The form of ``POST /files``."""

    file: bytes
    """The file's bytes (a part with a filename)."""
    purpose: Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


class FileCounts(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStore(BaseModel):
    id: str
    object: Literal["vector_store"]
    created_at: int
    name: str
    metadata: dict[str, str]
    status: Literal["in_progress", "completed", "expired"]
    usage_bytes: int
    file_counts: FileCounts
    last_active_at: int | None
    expires_after: dict[str, Any] | None
    expires_at: int | None


class FileError(BaseModel):
    code: str
    message: str


class VectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file"]
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "failed", "cancelled"]
    last_error: FileError | None
    usage_bytes: int
    attributes: dict[str, str | float | bool] | None


class FileBatch(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"]
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "failed", "cancelled"]
    file_counts: FileCounts


class TextContent(BaseModel):
    type: Literal["text"]
    text: str


class SearchHit(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, str | float | bool] | None
    content: list[TextContent]


class SearchResults(BaseModel):
    object: Literal["vector_store.search_results.page"]
    search_query: list[str]
    data: list[SearchHit]
    has_more: bool
    next_page: str | None


class FileContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"]
    data: list[TextContent]
    has_more: bool
    next_page: str | None


# ---- containers ------------------------------------------------------------------------------


class ContainerObject(BaseModel):
    id: str
    object: Literal["container"]
    created_at: int
    status: str
    name: str
    last_active_at: int


class ContainerFileObject(BaseModel):
    id: str
    object: Literal["container.file"]
    container_id: str
    created_at: int
    bytes: int
    path: str
    source: str


# ---- models and deployments ------------------------------------------------------------------


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class Sku(BaseModel):
    name: str
    capacity: int
    family: str
    size: str
    tier: str


class Deployment(BaseModel):
    """``ModelDeployment`` as azure-ai-projects parses it."""

    type: Literal["ModelDeployment"]
    name: str
    modelName: str
    modelVersion: str
    modelPublisher: str
    capabilities: dict[str, str]
    sku: Sku
    connectionName: str | None


# ---- agents, connections, toolboxes ----------------------------------------------------------


class AgentVersion(BaseModel):
    """``AgentVersionDetails``."""

    object: Literal["agent.version"]
    id: str
    name: str
    version: str
    description: str | None
    created_at: int
    metadata: dict[str, str]
    status: str
    definition: dict[str, Any]


class AgentVersions(BaseModel):
    latest: AgentVersion


class Agent(BaseModel):
    """``AgentDetails``: the agent with its latest version."""

    object: Literal["agent"]
    id: str
    name: str
    state: str
    configuration_state: str
    versions: AgentVersions


class AgentDeleted(BaseModel):
    object: Literal["agent.deleted"]
    name: str
    deleted: bool


class AgentVersionDeleted(BaseModel):
    object: Literal["agent.version.deleted"]
    name: str
    version: str
    deleted: bool


class CredentialType(BaseModel):
    type: str


class Connection(BaseModel):
    """``Connection``: credentials carry their type only, never a secret."""

    name: str
    id: str
    type: str
    target: str
    isDefault: bool
    credentials: CredentialType
    metadata: dict[str, str]


class ConnectionDeleted(BaseModel):
    name: str
    deleted: bool


class ToolboxVersion(BaseModel):
    """``ToolboxVersionObject`` (plus ``mcp_endpoint``)."""

    object: Literal["toolbox.version"]
    id: str
    name: str
    version: str
    description: str | None
    created_at: int
    metadata: dict[str, str]
    tools: list[dict[str, Any]]
    mcp_endpoint: str


class ToolboxVersions(BaseModel):
    latest: ToolboxVersion


class Toolbox(BaseModel):
    """``ToolboxObject`` (plus ``mcp_endpoint``)."""

    object: Literal["toolbox"]
    id: str
    name: str
    created_at: int
    updated_at: int
    default_version: str
    versions: ToolboxVersions
    mcp_endpoint: str
    labels: dict[str, str]
    """Each label of the toolbox and the version it points at (``default`` among them)."""


class LabelObject(BaseModel):
    """A label of an agent or toolbox (a cupola extension)."""

    object: Literal["agent.label", "toolbox.label"]
    id: str
    name: str
    label: str
    version: str
    updated_at: int


class LabelMove(BaseModel):
    """One recorded move of a label: ``version`` null when it was removed,
    ``previous_version`` null when it was first set."""

    object: Literal["agent.label_move", "toolbox.label_move"]
    id: str
    name: str
    label: str
    version: str | None
    previous_version: str | None
    created_at: int


class JsonRpcMessage(BaseModel):
    """A JSON-RPC 2.0 message of the Model Context Protocol (streamable HTTP transport)."""

    model_config = ConfigDict(extra="allow")
    jsonrpc: Literal["2.0"]


class McpError(RootModel[JsonRpcMessage | OpenAIError]):
    """A toolbox MCP endpoint's error: a JSON-RPC error from the transport, or the OpenAI
    shape for a request that never reached it (unknown project, toolbox, method)."""


# ---- pages -----------------------------------------------------------------------------------

ItemPage = Page[Item]
FilePage = Page[FileObject]
VectorStorePage = Page[VectorStore]
VectorStoreFilePage = Page[VectorStoreFile]
ContainerPage = Page[ContainerObject]
ContainerFilePage = Page[ContainerFileObject]
AgentPage = Page[Agent]
AgentVersionPage = Page[AgentVersion]
ToolboxPage = Page[Toolbox]
ToolboxVersionPage = Page[ToolboxVersion]
LabelPage = Page[LabelObject]
LabelMovePage = Page[LabelMove]
DeploymentList = ValueList[Deployment]
ConnectionList = ValueList[Connection]
