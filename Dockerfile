# syntax=docker/dockerfile:1
# Any HomeStation service as an image, for people with Docker (make containerize builds the same
# without one):  docker build --build-arg SERVICE=inventory -t …/homestation/inventory .
# A service made by `make app` needs nothing added here. The build stage compiles the one service
# (release, locked); the image is distroless, running as 65532, the user the charts' restricted pods
# expect. `backup` runs pg_dump/pg_restore, so its image adds the PostgreSQL client:
#   docker build --build-arg SERVICE=backup --target backup -t …/homestation/backup .

ARG SERVICE=inventory

FROM docker.io/library/rust:1.95-bookworm AS build
ARG SERVICE
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -f "services/${SERVICE}/Cargo.toml" \
 && cargo build --release --locked -p "${SERVICE}" \
 && mkdir -p /out && cp "target/release/${SERVICE}" /out/service

FROM docker.io/library/debian:bookworm-slim AS backup
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && rm -rf /var/lib/apt/lists/* && useradd --uid 65532 --user-group --no-create-home nonroot
COPY --from=build /out/service /usr/local/bin/service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]

FROM gcr.io/distroless/cc-debian12:nonroot AS service
COPY --from=build /out/service /usr/local/bin/service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
