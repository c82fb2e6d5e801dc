# A stand-in for the Ollama image (none can be pulled here): /bin/ollama serve answers the
# paths the stack and Traefik check. A Debian base like the real image's Ubuntu one, so the
# stack's health check (bash over /dev/tcp) runs unchanged.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY ollama-standin.py /bin/ollama
ENV OLLAMA_HOST=0.0.0.0:11434
EXPOSE 11434
ENTRYPOINT ["/bin/ollama"]
CMD ["serve"]
