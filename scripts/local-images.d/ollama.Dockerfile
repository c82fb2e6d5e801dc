# A stand-in for the Ollama image (none can be pulled here): /bin/ollama serve
# (ollama-standin.py) behaves like Ollama where scaling sees it (slots, queue, model load,
# NDJSON streams, CPU per token) but runs no model. A Debian base like the real image's
# Ubuntu one, so the stack's health check (bash over /dev/tcp) runs unchanged.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY ollama-standin.py /bin/ollama
ENV OLLAMA_HOST=0.0.0.0:11434
EXPOSE 11434
ENTRYPOINT ["/bin/ollama"]
CMD ["serve"]
