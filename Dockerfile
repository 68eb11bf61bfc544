# Serving: multi-adapter LLM inference server.
#   docker build -t serving .                                # CPU (libtorch-cpu)
#   docker build --build-arg TORCH_BACKEND=cuda -t serving:cuda .
#   docker run -p 8000:8000 -v /models:/models serving --model /models/Llama-3.2-1B-Instruct
ARG TORCH_BACKEND=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TORCH_BACKEND
WORKDIR /src
COPY . .
RUN dotnet publish src/Server/Server.csproj -c Release -p:TorchBackend=${TORCH_BACKEND} -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
ENV ASPNETCORE_URLS=http://0.0.0.0:8000 \
    XDG_CACHE_HOME=/var/cache
EXPOSE 8000
ENTRYPOINT ["dotnet", "Serving.Server.dll"]
