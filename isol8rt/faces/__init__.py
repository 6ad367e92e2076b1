"""What the plain (``isol8rt.sync``) and asyncio (``isol8rt.aio``) faces share: the portal that runs the trio
engine on a thread of its own (``portal``), and the keyword shortcuts for requests and options
(``shortcuts``)."""
