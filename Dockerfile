# syntax=docker/dockerfile:1
# Serving: multi-adapter LLM inference server.
#   docker build -t serving .                                   # CPU image (libtorch-cpu)
#   docker build --build-arg TORCH_BACKEND=cuda -t serving:cuda .  # CUDA 12.8 image (TorchSharp-cuda-linux)
#   docker run -p 8000:8000 -v /models/Llama-3.2-1B-Instruct:/models/model:ro -v serving-adapters:/adapters serving
# Configuration is by environment (Serving__Section__Key, see docs/API.md) or by arguments after the image name.
# The entrypoint is exactly what the tests start (tests/Server.Tests/Deployment/ContainerImageTests.cs).
ARG TORCH_BACKEND=cpu
ARG DOTNET_VERSION=10.0
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG TORCH_BACKEND
# gcc builds the engine's native kernels (libserving_amx.so: the AMX bf16 projections, used on CPUs that have AMX, and the
# AVX512-BF16 LoRA rows, used on CPUs that have AVX512-BF16).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props .editorconfig ./
COPY build/ build/
COPY proto/ proto/
COPY src/ src/
RUN dotnet restore src/Server/Server.csproj -p:TorchBackend=${TORCH_BACKEND} \
 && dotnet publish src/Server/Server.csproj -c Release --no-restore -p:TorchBackend=${TORCH_BACKEND} -o /app

# CPU: the ASP.NET Core runtime image (it already has the non-root user "app", UID 1654).
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime-cpu

# CUDA: NVIDIA's runtime image with the .NET runtime copied in; the driver comes from the host (NVIDIA container toolkit).
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS dotnet-runtime
FROM ${CUDA_RUNTIME_IMAGE} AS runtime-cuda
COPY --from=dotnet-runtime /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet \
 && groupadd --gid 1654 app && useradd --uid 1654 --gid app --create-home app

FROM runtime-${TORCH_BACKEND} AS final
WORKDIR /app
COPY --from=build /app .
RUN mkdir -p /models /adapters /var/lib/serving /var/cache/serving \
 && chown -R 1654:1654 /adapters /var/lib/serving /var/cache/serving
ENV ASPNETCORE_URLS=http://0.0.0.0:8000 \
    Serving__Model__Path=/models/model \
    Serving__Model__CacheDirectory=/var/cache/serving \
    Serving__Adapters__Path=/adapters \
    Serving__Adapters__RegistryPath=/var/lib/serving/adapter-registry.json \
    Serving__Adapters__DiskCachePath=/var/cache/serving/adapters \
    SERVING_HEALTHCHECK_URL=http://127.0.0.1:8000/readyz \
    DOTNET_gcServer=1
VOLUME ["/models", "/adapters", "/var/lib/serving", "/var/cache/serving"]
EXPOSE 8000
USER app
HEALTHCHECK --interval=15s --timeout=6s --start-period=120s --retries=3 CMD ["dotnet", "Serving.Server.dll", "healthcheck"]
ENTRYPOINT ["dotnet", "Serving.Server.dll"]
