"""The data-run service (FastAPI) and its client. Import `DataRunClient` from
`relmodel.tasks.service.client`: it needs only httpx and pydantic, not the service's dependencies."""
