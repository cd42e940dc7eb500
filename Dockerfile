# gantry's own image, built by gantry itself (scripts/image-context.sh prepares the context):
#
#   bash scripts/image-context.sh target/image-context target/x86_64-unknown-linux-gnu/release/gantry
#   gantry build --context target/image-context --dockerfile Dockerfile --destination ...
#   gantry build ... --target debug --destination ...:debug
#
# The context holds `gantry` (a static binary), `ca-certificates.crt` and `busybox/` (a static
# busybox and its applet links, for the debug image). No stage runs a command, so the image
# builds anywhere gantry runs, with no base image to pull.
#
# The default target is the plain image; `debug` adds a busybox shell for GitLab CI jobs, which
# run their script with `sh` (use `entrypoint: [""]`).

FROM scratch AS release
COPY gantry /usr/local/bin/gantry
# kaniko's path, so `/kaniko/executor --context ... --destination ...` keeps working.
COPY gantry /kaniko/executor
# The marker that lets in-place isolation overwrite the root filesystem: only inside this image.
COPY gantry-image /kaniko/.gantry-image
# Under /kaniko, as kaniko keeps its own: an in-place build unpacks and deletes /etc, and must
# not take gantry's CA bundle with it.
COPY ca-certificates.crt /kaniko/ssl/certs/ca-certificates.crt
COPY workspace /workspace
ENV PATH=/usr/local/bin:/kaniko \
    SSL_CERT_FILE=/kaniko/ssl/certs/ca-certificates.crt \
    DOCKER_CONFIG=/kaniko/.docker/
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/gantry"]
LABEL org.opencontainers.image.title="gantry" \
      org.opencontainers.image.description="Build container images in CI without a Docker daemon" \
      org.opencontainers.image.source="https://github.com/gantry-build/gantry" \
      org.opencontainers.image.licenses="Apache-2.0"

FROM release AS debug
COPY busybox /busybox
ENV PATH=/usr/local/bin:/kaniko:/busybox
ENTRYPOINT ["/usr/local/bin/gantry"]

FROM release
