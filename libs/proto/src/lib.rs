//! Generated gRPC types and services of HomeStation's APIs.

#![allow(clippy::all)]

pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("homestation.inventory.v1");
    }
}
