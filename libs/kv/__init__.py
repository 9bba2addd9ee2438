"""Master discovery stores: where applications look up each cluster's master.

`base` is the interface (`MasterKVStore`, `PublishedMaster`, `PublishResult`), `layout` the pure key
layout (orchestrator's five keys plus Baton's epoch key), `consul` the Consul adapter. Import the
adapter module explicitly: it pulls in aiohttp and python-consul2.
"""
