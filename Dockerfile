# Container images of SyncMesh: static binaries on an empty base image, run as a non-root user.
#
#   docker build --target replica  -t syncmesh/syncmesh-replica:0.1.0 .
#   docker build --target operator -t syncmesh/syncmesh-operator:0.1.0 .
#
# The injected replica's security context expects uid 65532 and a read-only root filesystem;
# its data goes to the mounted /var/lib/syncmesh.
FROM rust:1.95-alpine AS build
# musl-dev: static linking; make: jemalloc's build.
RUN apk add --no-cache musl-dev make
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p syncmesh-replica -p syncmesh-operator \
 && cp target/release/syncmesh-replica target/release/syncmesh-operator /

FROM scratch AS replica
COPY --from=build /syncmesh-replica /syncmesh-replica
USER 65532:65532
EXPOSE 6379 7379 9379
ENTRYPOINT ["/syncmesh-replica"]

FROM scratch AS operator
COPY --from=build /syncmesh-operator /syncmesh-operator
USER 65532:65532
EXPOSE 8080 9443
ENTRYPOINT ["/syncmesh-operator"]
