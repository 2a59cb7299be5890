# The nashflow binary (used by docker-compose.yml).
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p nashflow-pipelines --bin nashflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/nashflow /usr/local/bin/nashflow
EXPOSE 8650
ENTRYPOINT ["nashflow"]
