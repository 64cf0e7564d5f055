"""``imagen-video serve``: a long-lived generation server with a web page and an HTTP job API.

One process loads the cascades and the text encoder once (paper sec. 2.2) and serves the Gradio page
(:mod:`~imagen_video.serve.page`) and the job API (:mod:`~imagen_video.serve.api`); requests with the
same settings share batches (:mod:`~imagen_video.serve.batcher`) and jobs live in a durable store
(:mod:`~imagen_video.serve.store`). Needs the ``serve`` extra; see docs/serve.md.
"""
