//! Inventory's gRPC read API (`homestation.inventory.v1.Inventory`) with grpc.health.v1 beside it.

use proto::inventory::v1 as pb;
use proto::inventory::v1::inventory_server::{Inventory, InventoryServer};
use service_kit::{ApiError, Authenticator};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::domain::{Health, NodeKind};
use crate::store::{self, Key, Node, ServiceRecord};

pub struct GrpcApi {
    pool: PgPool,
}

/// The gRPC routes: the Inventory service behind the same identities as REST, and the health service open.
pub async fn routes(pool: PgPool, auth: Authenticator) -> tonic::service::Routes {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<InventoryServer<GrpcApi>>().await;
    let authenticated =
        InventoryServer::with_interceptor(GrpcApi { pool }, move |request: Request<()>| {
            let headers = request.metadata().clone().into_headers();
            auth.identify(&headers).map_err(Status::from)?;
            Ok(request)
        });
    tonic::service::Routes::new(health_service).add_service(authenticated)
}

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

impl From<Node> for pb::Node {
    fn from(n: Node) -> Self {
        Self {
            id: n.id.to_string(),
            name: n.name,
            kind: n.kind.as_str().into(),
            addresses: n.addresses,
            labels: n.labels.into_iter().collect(),
            health: n.health.as_str().into(),
            last_seen: rfc3339(n.last_seen),
            gpu: n.gpu.map(|g| pb::GpuFacts {
                model: g.model,
                jetpack: g.jetpack.unwrap_or_default(),
                l4t: g.l4t.unwrap_or_default(),
                cuda: g.cuda.unwrap_or_default(),
                gpu_name: g.gpu_name.unwrap_or_default(),
                memory_bytes: g.memory_bytes,
                architecture: g.architecture,
            }),
        }
    }
}

impl From<ServiceRecord> for pb::Service {
    fn from(s: ServiceRecord) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name,
            namespace: s.namespace,
            endpoints: s.endpoints,
            owner: s.owner.unwrap_or_default(),
            health: s.health.as_str().into(),
        }
    }
}

#[tonic::async_trait]
impl Inventory for GrpcApi {
    async fn get_node(
        &self,
        request: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let key = request.into_inner().id_or_name;
        let node = store::get_node(&self.pool, &Key::parse(&key))
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| Status::not_found(format!("no node {key}")))?;
        Ok(Response::new(node.into()))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let raw = request.into_inner().kind;
        let kind = match raw.as_str() {
            "" => None,
            other => Some(NodeKind::parse(other).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "kind: {other:?} is not one of control, worker, edge, vm"
                ))
            })?),
        };
        let nodes = store::list_nodes(&self.pool, kind, None)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: nodes.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let namespace = request.into_inner().namespace;
        let namespace = (!namespace.is_empty()).then_some(namespace);
        let services = store::list_services(&self.pool, namespace.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListServicesResponse {
            services: services.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_summary(
        &self,
        _: Request<pb::GetSummaryRequest>,
    ) -> Result<Response<pb::Summary>, Status> {
        use store::{CountColumn, Counted};
        let counted = |table, column| async move {
            store::count_by(&self.pool, table, column)
                .await
                .map_err(ApiError::from)
        };
        let nodes = counted(Counted::Nodes, CountColumn::Health).await?;
        let kinds = counted(Counted::Nodes, CountColumn::Kind).await?;
        let services = counted(Counted::Services, CountColumn::Health).await?;
        let get = |map: &std::collections::BTreeMap<String, i64>, key: &str| {
            u32::try_from(map.get(key).copied().unwrap_or(0)).unwrap_or(u32::MAX)
        };
        let total = |map: &std::collections::BTreeMap<String, i64>| {
            u32::try_from(map.values().sum::<i64>()).unwrap_or(u32::MAX)
        };
        Ok(Response::new(pb::Summary {
            nodes: total(&nodes),
            nodes_healthy: get(&nodes, Health::Healthy.as_str()),
            nodes_offline: get(&nodes, Health::Offline.as_str()),
            edge_nodes: get(&kinds, NodeKind::Edge.as_str()),
            services: total(&services),
            services_healthy: get(&services, Health::Healthy.as_str()),
        }))
    }
}
